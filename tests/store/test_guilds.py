"""The server configuration repository's short cache: read once per `FRESH_SECONDS`, this process's own
changes at once, another process's within `FRESH_SECONDS`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.store.database import Database
from bot.store.guilds import ChannelSetting, GuildRepo, Setting
from bot.store.sqlite import SqliteDatabase


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingDatabase(SqliteDatabase):
    """The real SQLite store, counting the statements that reach it."""

    statements = 0

    async def fetchone(self, sql: str, params: tuple[object, ...] | dict[str, object] = ()):  # type: ignore[no-untyped-def, override]
        self.statements += 1
        return await super().fetchone(sql, params)

    async def fetchall(self, sql: str, params: tuple[object, ...] | dict[str, object] = ()):  # type: ignore[no-untyped-def, override]
        self.statements += 1
        return await super().fetchall(sql, params)


async def change(repo: GuildRepo, guild_id: int, prompt: str) -> None:
    await repo.set_setting(guild_id, Setting.SYSTEM_PROMPT, prompt, actor_id=1, action="prompt", old_text=None,
                           new_text=prompt)


async def test_settings_are_read_once_while_fresh_and_own_changes_apply_at_once(db_path: Path) -> None:
    clock = Clock()
    async with CountingDatabase(db_path) as db:
        await db.migrate()
        repo = GuildRepo(db, clock=clock)
        before = db.statements
        for _ in range(5):
            assert (await repo.settings(7)).system_prompt is None
            assert await repo.patterns(7) == []
            assert not (await repo.channel(70)).off
        assert db.statements - before == 3  # one read of each

        await change(repo, 7, "Be brief.")
        await repo.set_channel(7, 70, ChannelSetting.OFF, 1, actor_id=1, old_text=None, new_text="off")
        await repo.add_pattern(7, "openai/*", actor_id=1, seed=[])
        assert (await repo.settings(7)).system_prompt == "Be brief."
        assert (await repo.channel(70)).off
        assert await repo.patterns(7) == ["openai/*"]


async def test_another_processs_change_shows_once_the_cached_copy_is_stale(db_path: Path) -> None:
    clock = Clock()
    async with SqliteDatabase(db_path) as db, SqliteDatabase(db_path) as other_db:
        await db.migrate()
        repo, other = GuildRepo(db, clock=clock), GuildRepo(other_db)
        assert (await repo.settings(7)).system_prompt is None
        await change(other, 7, "Answer in French.")
        clock.now += GuildRepo.FRESH_SECONDS - 0.1
        assert (await repo.settings(7)).system_prompt is None  # still fresh: not read again
        clock.now += 0.2
        assert (await repo.settings(7)).system_prompt == "Answer in French."


async def test_a_read_that_overlaps_a_change_is_not_kept(db_path: Path) -> None:
    """A read handed to the database before a change commits returns the old settings; it must not stay
    in the cache for `FRESH_SECONDS` after the change."""
    clock = Clock()
    async with SqliteDatabase(db_path) as db:
        await db.migrate()
        repo = GuildRepo(db, clock=clock)
        gate = asyncio.Event()
        original = db.fetchone

        async def slow_fetchone(sql: str, params: object = ()) -> object:
            row = await original(sql, params)  # type: ignore[arg-type]
            await gate.wait()  # the change lands while this read's (old) row is on its way back
            return row

        db.fetchone = slow_fetchone  # type: ignore[method-assign, assignment]
        reading = asyncio.create_task(repo.settings(7))
        await asyncio.sleep(0.01)
        db.fetchone = original  # type: ignore[method-assign]
        await change(repo, 7, "New prompt.")
        gate.set()
        assert (await reading).system_prompt is None  # the read began before the change
        assert (await repo.settings(7)).system_prompt == "New prompt."


async def test_the_cache_stays_bounded(migrated_db: Database) -> None:
    clock = Clock()
    repo = GuildRepo(migrated_db, clock=clock)
    repo.KEEP_AT_MOST = 10
    for guild_id in range(25):
        await repo.settings(guild_id)
        clock.now += 1
    assert len(repo._cache) <= 10
