"""What Discord answers feeds the bot back: real responses of the local fake Discord, read through the
same aiohttp trace hook discord.py is given."""

from __future__ import annotations

import contextlib

import aiohttp

from bot.discord.limits import SLOW_AT, WARN_AT, DiscordLimits
from bot.discord.pacing import ChannelPacer
from tests.fakes.discord import FakeDiscord


async def post_messages(fake: FakeDiscord, limits: DiscordLimits, count: int) -> tuple[list[int], str | None]:
    """Post `count` messages in the fake's text channel through the trace hook: their statuses, and the
    last response's `X-RateLimit-Reset-After`."""
    statuses: list[int] = []
    reset_after = None
    async with aiohttp.ClientSession(trace_configs=[limits.trace_config()], headers={"Authorization": "Bot t"}) as http:
        for i in range(count):
            async with http.post(f"{fake.base_url}/api/v10/channels/{fake.text_channel_id}/messages",
                                 json={"content": f"m{i}"}) as resp:
                statuses.append(resp.status)
                reset_after = resp.headers.get("X-RateLimit-Reset-After")
    return statuses, reset_after


async def test_429s_pause_the_pacer_and_401_403_429_count_as_invalid() -> None:
    fake = FakeDiscord(global_limit=3)
    await fake.start()
    pacer = ChannelPacer(margin=0.0)
    limits = DiscordLimits(pacer)
    api = f"{fake.base_url}/api/v10"
    try:
        async with aiohttp.ClientSession(trace_configs=[limits.trace_config()]) as http:
            async with http.get(f"{api}/users/@me") as resp:  # no token: 401
                assert resp.status == 401
            statuses = []
            for _ in range(4):  # the fourth in a second is over the (here) 3-a-second global limit
                async with http.get(f"{api}/users/@me", headers={"Authorization": "Bot t"}) as resp:
                    statuses.append(resp.status)
            assert statuses == [200, 200, 200, 429]
    finally:
        await fake.close()
    assert limits.rate_limited == {"global": 1, "route": 0, "shared": 0}
    assert limits.invalid_in_window() == 2 == len(fake.invalid_requests)
    assert 0 < pacer.global_delay() <= 2.01  # every write waits what Discord asked (Retry-After: whole seconds)


async def test_a_channels_429_pauses_that_channel_only() -> None:
    fake = FakeDiscord()
    await fake.start()
    pacer = ChannelPacer(margin=0.0)
    limits = DiscordLimits(pacer)
    channel = fake.text_channel_id
    try:
        statuses, _ = await post_messages(fake, limits, 6)  # Discord's bucket: 5 messages per 5 s in a channel
        assert statuses[-1] == 429
    finally:
        await fake.close()
    assert limits.rate_limited["route"] == 1 and limits.invalid_in_window() == 1
    assert pacer.delay(channel) > 4 and pacer.delay(channel + 1) == 0 and pacer.global_delay() == 0


async def test_a_global_429_on_a_channel_route_pauses_for_the_global_wait_not_the_channels_bucket() -> None:
    """A global 429 of a message write may carry the channel's bucket headers too: their Reset-After says
    when the channel's 5-per-5-s bucket refills, not when the global limit lets writes go again."""
    fake = FakeDiscord(global_limit=2)
    await fake.start()
    pacer = ChannelPacer(margin=0.0)
    limits = DiscordLimits(pacer)
    try:
        statuses, reset_after = await post_messages(fake, limits, 3)
        assert statuses == [200, 200, 429] and reset_after is not None and float(reset_after) > 4
    finally:
        await fake.close()
    assert limits.rate_limited["global"] == 1
    assert 0 < pacer.global_delay() <= 2.01  # Retry-After (whole seconds), not the bucket's ~5 s


def test_near_the_ban_a_warning_is_logged_and_live_edits_slow_down() -> None:
    now = [0.0]
    pacer = ChannelPacer(global_per_second=45)
    limits = DiscordLimits(pacer, clock=lambda: now[0])
    for _ in range(WARN_AT):
        limits.observe(403, {}, "/api/v10/channels/1/messages")
    assert limits.warned and pacer.live_slowdown == 1.0
    for _ in range(SLOW_AT):
        limits.observe(401, {}, "/api/v10/users/@me")
    assert pacer.live_slowdown > 1.0
    now[0] += 601  # ten minutes on, all of them have left the window
    limits.observe(200, {}, "/api/v10/users/@me")
    assert limits.invalid_in_window() == 0 and pacer.live_slowdown == 1.0 and not limits.warned
    limits.observe(429, {"X-RateLimit-Scope": "shared", "Retry-After": "1"}, "/api/v10/channels/1/messages")
    assert limits.invalid_in_window() == 0 and limits.rate_limited["shared"] == 1  # shared ones do not count


async def test_a_request_that_never_went_out_does_not_settle_another_ones_slot() -> None:
    """The pacer counts a request from when its headers went out until a window after its answer; one that
    fails before it goes out (the connection refused) takes nothing and settles nothing."""
    pacer = ChannelPacer(margin=0.0, global_per_second=2)
    limits = DiscordLimits(pacer)
    pacer.sent()  # another request, on its way
    async with aiohttp.ClientSession(trace_configs=[limits.trace_config()]) as http:
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with http.get("http://127.0.0.1:9/api/v10/users/@me"):
                pass
    assert pacer._counted(pacer._clock()) == 1 and not pacer._answered  # the other is still on its way
    pacer.answered()
    assert len(pacer._answered) == 1 and not pacer._in_flight
