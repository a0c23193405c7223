"""Sharding: which guilds a process owns, its settings, and IDENTIFY slots shared by processes through one
database (two connections to one SQLite file stand for two processes)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bot.discord.identify import IdentifyGate
from bot.settings import SettingsError, load_settings
from bot.shards import ShardScope, shard_of
from bot.store.sqlite import SqliteDatabase
from bot.store.state import StateRepo


def guild_on(shard: int, count: int) -> int:
    """A guild id on `shard` of `count` (Discord: `(guild_id >> 22) % count`)."""
    return ((1_000_000 * count + shard) << 22) | 12345


def test_guilds_map_to_shards_and_dms_to_shard_0() -> None:
    assert shard_of(guild_on(3, 4), 4) == 3 and shard_of(None, 4) == 0 and shard_of(0, 4) == 0
    every = ShardScope()
    assert every.everything and every.owns(guild_on(3, 4)) and every.answers_dms
    upper = ShardScope(frozenset({2, 3}), 4)
    assert upper.owns(guild_on(2, 4)) and upper.owns(guild_on(3, 4)) and not upper.owns(guild_on(1, 4))
    assert not upper.answers_dms and not upper.owns(0)
    assert ShardScope(frozenset({0}), 4).answers_dms


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("DISCORD_", "OPENROUTER_", "SHARD_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", "t")
    monkeypatch.setenv("OPENROUTER_API_KEY", "k")
    return monkeypatch


def test_shard_settings(env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.shard_count, s.shard_ids, s.process_writes_per_second) == (None, None, 45)
    assert ShardScope.from_settings(s).everything
    env.setenv("SHARD_COUNT", "4")
    env.setenv("SHARD_IDS", "2-3")
    s = load_settings()
    assert s.shard_ids == [2, 3] and s.process_writes_per_second == 22  # half the shards, half of 45
    assert ShardScope.from_settings(s) == ShardScope(frozenset({2, 3}), 4)
    env.setenv("SHARD_IDS", "0, 1,2")
    env.setenv("DISCORD_WRITES_PER_SECOND", "40")
    assert load_settings().process_writes_per_second == 30
    env.setenv("SHARD_IDS", "")
    assert load_settings().shard_ids is None


@pytest.mark.parametrize(("count", "ids", "message"), [
    ("", "1", "SHARD_IDS needs SHARD_COUNT"), ("2", "0,2", "SHARD_IDS must be distinct"),
    ("2", "1,1", "SHARD_IDS must be distinct"), ("0", "", "SHARD_COUNT is invalid"),
])
def test_bad_shard_settings_say_what_is_wrong(env: pytest.MonkeyPatch, count: str, ids: str, message: str) -> None:
    env.setenv("SHARD_COUNT", count)
    env.setenv("SHARD_IDS", ids)
    with pytest.raises(SettingsError, match=message):
        load_settings()


async def two_processes(path: Path) -> tuple[SqliteDatabase, SqliteDatabase]:
    first, second = SqliteDatabase(path), SqliteDatabase(path)
    await first.open()
    await first.migrate()
    await second.open()
    return first, second


async def test_exactly_one_process_claims_a_slot(db_path: Path) -> None:
    a, b = await two_processes(db_path)
    try:
        ra, rb = StateRepo(a), StateRepo(b)
        assert await ra.claim_until("identify_slot:0", 1_000, 6_500) is None
        assert await rb.claim_until("identify_slot:0", 1_001, 6_501) == 6_500  # held: when it frees
        assert await rb.claim_until("identify_slot:1", 1_001, 6_501) is None  # another bucket is free
        assert await rb.claim_until("identify_slot:0", 6_500, 12_000) is None
        assert await ra.claim_until("identify_slot:0", 6_600, 12_100) == 12_000
        results = await asyncio.gather(*(StateRepo(db).claim_until("identify_slot:2", 20_000, 25_500)
                                         for db in (a, b, a, b)))
        assert results.count(None) == 1 and results.count(25_500) == 3
    finally:
        await a.close()
        await b.close()


async def test_shards_of_two_processes_identify_one_window_apart(db_path: Path) -> None:
    a, b = await two_processes(db_path)

    def claimer(db: SqliteDatabase) -> Callable[[int, float], Awaitable[float]]:
        async def claim(bucket: int, window: float) -> float:
            now = int(time.time() * 1000)
            held = await StateRepo(db).claim_until(f"identify_slot:{bucket}", now, now + int(window * 1000))
            return 0.0 if held is None else max(0.01, (held - now) / 1000)
        return claim

    async def one() -> int:
        return 1

    times: list[tuple[float, int]] = []

    async def identify(gate: IdentifyGate, shard: int) -> None:
        await gate.wait_turn(shard)
        times.append((time.monotonic(), shard))

    try:
        gates = [IdentifyGate(claimer(db), one, window=0.3) for db in (a, b)]
        await asyncio.gather(identify(gates[0], 0), identify(gates[1], 2), identify(gates[0], 1), identify(gates[1], 3))
        stamps = sorted(t for t, _ in times)
        assert sorted(s for _, s in times) == [0, 1, 2, 3]
        assert all(later - earlier >= 0.28 for earlier, later in itertools.pairwise(stamps))
    finally:
        await a.close()
        await b.close()
