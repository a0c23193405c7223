"""Two bot processes, two shards each, one database, four guilds: every guild is answered exactly once,
DMs by the process that holds shard 0, no IDENTIFY breaks Discord's max_concurrency, and together they
stay under Discord's global limit, each taking half the write budget."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.discord.conftest import Harness
from tests.fakes.discord.state import shard_of
from tests.postgres import Postgres

ROOT = Path(__file__).resolve().parents[2]
SHARDS = 4
GLOBAL_LIMIT = 10  # Discord's 50 a second, scaled down so that a dozen threads reach it
WRITES_PER_SECOND = 8  # the whole bot's budget: 4 a second for each process


@pytest.fixture
async def shared_database(postgres: Postgres) -> dict[str, str]:
    """Where both processes keep their data: one PostgreSQL database, as sharded processes would share."""
    return {"DATABASE_URL": await postgres.fresh_url()}


async def spawn(h: Harness, database: dict[str, str], shard_ids: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OPENROUTER_", "DATABASE_"))} | {
        "FAKE_DISCORD_API": f"{h.discord.base_url}/api/v10",
        "FAKE_DISCORD_GATEWAY": h.discord.gateway_url,
        "DISCORD_TOKEN": "sharded-discord-token",
        "OPENROUTER_API_KEY": "sk-or-v1-sharded-key-0123",
        "OPENROUTER_BASE_URL": h.openrouter.base_url,
        "DEFAULT_MODEL": "openai/gpt-4o",
        "STREAM_EDIT_INTERVAL_SECONDS": "0.2",
        "SHARD_COUNT": str(SHARDS),
        "SHARD_IDS": shard_ids,
        "DISCORD_WRITES_PER_SECOND": str(WRITES_PER_SECOND),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "PYTHONPATH": str(ROOT),
    } | database
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.discord.bot_process", cwd=h.db_path.parent, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


@pytest.fixture
async def two_processes(harness: Harness, shared_database: dict[str, str],
                        request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    d = harness.discord
    # By default shards 0 and 2 share an IDENTIFY bucket, and so do 1 and 3: across the two processes.
    d.gateway.max_concurrency = getattr(request, "param", 2)
    d.limits.global_limit = GLOBAL_LIMIT
    for _ in range(SHARDS - 1):
        d.add_guild()
    assert sorted(shard_of(g, SHARDS) for g in d.guild_ids) == [0, 1, 2, 3]
    procs = [await spawn(harness, shared_database, "0,1"), await spawn(harness, shared_database, "2-3")]
    try:
        await d.wait_for(lambda: len(d.ready_shards) == SHARDS, timeout=40)
        await asyncio.sleep(0.5)  # the last shard's guilds reach the bot's cache
        yield harness
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        outputs = [await asyncio.wait_for(proc.communicate(), 30) for proc in procs]
        for proc, (out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, (out + err).decode()[-3000:]


async def test_two_processes_answer_every_guild_exactly_once(two_processes: Harness) -> None:
    h = two_processes
    d = h.discord
    assert sorted(tuple(p["shard"]) for p in d.identify_payloads) == [(i, SHARDS) for i in range(SHARDS)]
    assert d.identify_refused == []  # the processes took turns in each bucket, as Discord requires
    assert [p for _, _, p, _ in d.request_log if p.endswith("/gateway/bot")] == ["/api/v10/gateway/bot"] * 2

    chats = [await d.slash("chat", {"prompt": f"hello guild {i}"}, user_id=h.user, channel_id=d.text_channel_of(g))
             for i, g in enumerate(d.guild_ids)]
    dm = await d.open_dm(h.user)
    await d.post_message(dm, "hello in private", user_id=h.user)
    for inter in chats:
        await inter.wait_response(timeout=10)
        await h.wait_answer_done(inter.channel_id)
    await h.wait_answer_done(dm)
    await asyncio.sleep(1.0)  # time for a second, wrong answer to show up if one were coming

    for inter in chats:
        assert inter.response_type == 4 and inter.callback_errors == []  # answered once, by one process
        answers = [m for m in h.bot_messages(inter.channel_id) if "\n-# " in "\n" + m.content]
        assert len(answers) == 1, [m.content for m in h.bot_messages(inter.channel_id)]
    assert len([m for m in h.bot_messages(dm) if "\n-# " in "\n" + m.content]) == 1
    assert len(h.openrouter.chat_requests()) == SHARDS + 1
    assert d.global_429_count == 0


@pytest.mark.parametrize("two_processes", [SHARDS], indirect=True)  # every shard identifies at once: a quick start
async def test_two_processes_share_the_global_write_budget(two_processes: Harness) -> None:
    """Twelve threads answering at once, three in each guild: each process takes half the bot's budget,
    so the two together never pass Discord's global limit (with the whole budget each, they would)."""
    h = two_processes
    d = h.discord
    rooms = [d.add_text_channel(f"room-{i}", guild_id) for guild_id in d.guild_ids for i in range(3)]
    await asyncio.sleep(0.3)  # CHANNEL_CREATE reaches the bots
    for room in rooms:
        await d.slash("chat", {"prompt": f"topic {room}"}, user_id=h.user, channel_id=room)
    await d.wait_for(lambda: len(d.threads) == len(rooms), timeout=30)
    h.openrouter.tokens_per_second = 40
    h.openrouter.reply_text = "busy " * 60  # about 1.5 s of streaming each
    await asyncio.gather(*(d.post_message(t, "and now?", user_id=h.user) for t in list(d.threads)))
    for thread_id in list(d.threads):
        await h.wait_answer_done(thread_id, within=40)
    assert d.global_429_count == 0 and d.route_429_count == 0, d.rate_limit_log
