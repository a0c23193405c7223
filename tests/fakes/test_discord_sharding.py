"""The fake Discord shards as Discord does: raw websocket sessions identify with `shard: [id, count]` and get
only their guilds' events, direct messages go to shard 0, IDENTIFY is limited per `max_concurrency` bucket,
a session with too many guilds is closed with 4011, and `GET /gateway/bot` answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.state import shard_of

INTENTS = (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15)  # guilds, guild and DM messages, content


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def fake_with(**options: Any) -> FakeDiscord:
    fake = FakeDiscord(**options)
    await fake.start()
    return fake


WS = aiohttp.ClientWebSocketResponse


async def identify(s: aiohttp.ClientSession, fake: FakeDiscord, shard: list[int] | None) -> WS:
    ws = await s.ws_connect(fake.gateway_url + "?v=10&encoding=json")
    hello = await ws.receive_json(timeout=5)
    assert hello["op"] == 10
    data: dict[str, Any] = {"token": "Bot t", "intents": INTENTS, "properties": {}}
    if shard is not None:
        data["shard"] = shard
    await ws.send_json({"op": 2, "d": data})
    return ws


async def frames(ws: WS, until: str | None = None, quiet: float = 0.5) -> list[dict[str, Any]]:
    """Frames until event `until` arrived (or nothing came for `quiet` seconds)."""
    got: list[dict[str, Any]] = []
    while True:
        try:
            msg = await ws.receive(timeout=quiet)
        except TimeoutError:
            return got
        if msg.type is not aiohttp.WSMsgType.TEXT:
            got.append({"closed": ws.close_code})
            return got
        got.append(json.loads(msg.data))
        if until is not None and got[-1].get("t") == until:
            return got


def guilds_in(got: list[dict[str, Any]]) -> set[int]:
    return {int(f["d"]["id"]) for f in got if f.get("t") == "GUILD_CREATE"}


async def test_gateway_bot_recommends_a_shard_per_thousand_guilds(session: aiohttp.ClientSession) -> None:
    fake = await fake_with(max_concurrency=16)
    try:
        url = f"{fake.base_url}/api/v10/gateway/bot"
        async with session.get(url) as anonymous:
            assert anonymous.status == 401
        for _ in range(1500):
            fake.add_guild()
        async with session.get(url, headers={"Authorization": "Bot t"}) as resp:
            body = await resp.json()
        assert body["url"] == fake.gateway_url and body["shards"] == 2
        limit = body["session_start_limit"]
        assert limit["max_concurrency"] == 16 and limit["total"] == limit["remaining"] == 1000
        assert 0 < limit["reset_after"] <= 86_400_000
    finally:
        await fake.close()


async def test_each_shard_gets_its_guilds_and_their_events_and_dms_go_to_shard_0(
        session: aiohttp.ClientSession) -> None:
    fake = await fake_with(max_concurrency=2)  # shards 0 and 1 are in different buckets: both may identify at once
    try:
        guilds = [fake.guild_id, *(fake.add_guild() for _ in range(3))]
        assert sorted(shard_of(g, 2) for g in guilds) == [0, 0, 1, 1]  # ids made in turn spread over the shards
        user = fake.add_user("alice")
        ws0, ws1 = await identify(session, fake, [0, 2]), await identify(session, fake, [1, 2])
        got0, got1 = await frames(ws0), await frames(ws1)
        ready0 = next(f["d"] for f in got0 if f.get("t") == "READY")
        assert ready0["shard"] == [0, 2] and {int(g["id"]) for g in ready0["guilds"]} == guilds_in(got0)
        assert guilds_in(got0) == {g for g in guilds if shard_of(g, 2) == 0}
        assert guilds_in(got1) == {g for g in guilds if shard_of(g, 2) == 1}
        assert fake.identify_refused == [] and set(fake.ready_shards) == {0, 1}

        for guild_id in guilds:  # a message in each guild reaches only the shard that holds it
            await fake.post_message(fake.text_channel_of(guild_id), "hello", user_id=user)
        await fake.post_message(await fake.open_dm(user), "a direct message", user_id=user)
        got0, got1 = await frames(ws0), await frames(ws1)
        in0 = [f["d"].get("guild_id") for f in got0 if f.get("t") == "MESSAGE_CREATE"]
        in1 = [f["d"].get("guild_id") for f in got1 if f.get("t") == "MESSAGE_CREATE"]
        assert {int(g) for g in in0 if g} == guilds_in([{"t": "GUILD_CREATE", "d": {"id": g}} for g in guilds
                                                          if shard_of(g, 2) == 0])
        assert {int(g) for g in in1} == {g for g in guilds if shard_of(g, 2) == 1}
        assert in0.count(None) == 1 and None not in in1  # the DM went to shard 0 only
    finally:
        await fake.close()


async def test_identify_over_max_concurrency_gets_invalid_session(session: aiohttp.ClientSession) -> None:
    fake = await fake_with(max_concurrency=2)
    try:
        first = await identify(session, fake, [0, 4])
        assert any(f.get("t") == "READY" for f in await frames(first, "READY"))
        other_bucket = await identify(session, fake, [1, 4])  # bucket 1: allowed at once
        assert any(f.get("t") == "READY" for f in await frames(other_bucket, "READY"))
        same_bucket = await identify(session, fake, [2, 4])  # bucket 0 again within 5 s: refused
        [refused] = await frames(same_bucket)
        assert refused["op"] == 9 and refused["d"] is False
        assert [shard for _, shard in fake.identify_refused] == [2] and set(fake.ready_shards) == {0, 1}
    finally:
        await fake.close()


async def test_too_many_guilds_without_sharding_is_closed_with_4011(session: aiohttp.ClientSession) -> None:
    fake = await fake_with(max_concurrency=4)
    try:
        for _ in range(2500):  # 2,501 with the main guild
            fake.add_guild()
        unsharded = await identify(session, fake, None)
        assert await frames(unsharded) == [{"closed": 4011}]
        bad_shard = await identify(session, fake, [2, 2])
        assert await frames(bad_shard) == [{"closed": 4010}]
        sharded = await identify(session, fake, [1, 2])
        assert guilds_in(await frames(sharded, quiet=1.0)) == {g for g in fake.guild_ids if shard_of(g, 2) == 1}
        assert fake.closed_with == [(4011, 0), (4010, 2)]
    finally:
        await fake.close()
