from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bot.store.database import Database, Migration, MigrationError, load_migrations, migrations_dir


async def test_fresh_database_is_migrated_in_wal_with_foreign_keys(db_path: Path) -> None:
    async with Database(db_path) as db:
        applied = await db.migrate()
        assert applied == [m.version for m in load_migrations()]
        assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
        assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1
        assert (await db.fetchone("PRAGMA busy_timeout"))[0] == 5000
        rows = await db.fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == applied
        tables = {r["name"] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"conversations", "turns", "attachments"} <= tables


async def test_running_twice_changes_nothing(db_path: Path) -> None:
    async with Database(db_path) as db:
        await db.migrate()
        before = await db.fetchall("SELECT * FROM schema_migrations")
    async with Database(db_path) as db:
        assert await db.migrate() == []
        after = await db.fetchall("SELECT * FROM schema_migrations")
    assert [tuple(r) for r in before] == [tuple(r) for r in after]


async def test_newer_database_is_refused(db_path: Path) -> None:
    async with Database(db_path) as db:
        await db.migrate()
        await db.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'from_the_future')")
    async with Database(db_path) as db:
        with pytest.raises(MigrationError, match="newer than this code"):
            await db.migrate()


async def test_failed_migration_is_rolled_back_and_not_recorded(db_path: Path) -> None:
    good = Migration(1, "good", "CREATE TABLE a (x INTEGER);")
    bad = Migration(2, "bad", "CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);")
    async with Database(db_path) as db:
        with pytest.raises(MigrationError, match=r"0002_bad failed"):
            await db.migrate([good, bad])
        assert await db.schema_version() == 1
        names = {r["name"] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "a" in names and "b" not in names
        # the connection is usable afterwards
        await db.execute("INSERT INTO a VALUES (1)")


def test_migrations_are_found_without_relying_on_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = migrations_dir()
    assert folder.is_absolute()
    assert (folder / "0001_conversations.sql").is_file()


def test_misnamed_or_gapped_migrations_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="without gaps"):
        load_migrations(tmp_path)
    (tmp_path / "2_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


async def test_transaction_rolls_back_and_does_not_swallow_other_tasks_writes(db_path: Path) -> None:
    async with Database(db_path) as db:
        await db.execute("CREATE TABLE t (x INTEGER)")
        started = asyncio.Event()

        async def failing() -> None:
            async with db.transaction():
                await db.execute("INSERT INTO t VALUES (1)")
                started.set()
                await asyncio.sleep(0.05)
                raise RuntimeError("boom")

        async def bystander() -> None:
            await started.wait()
            await db.execute("INSERT INTO t VALUES (2)")  # waits for the transaction, then commits alone

        results = await asyncio.gather(failing(), bystander(), return_exceptions=True)
        assert isinstance(results[0], RuntimeError) and results[1] is None
        assert [r[0] for r in await db.fetchall("SELECT x FROM t")] == [2]


async def test_a_read_never_sees_another_tasks_uncommitted_rows(db_path: Path) -> None:
    """A read from one task while another task's transaction is open waits for it to end: it sees
    the rows only if they were committed, never rows that are then rolled back."""
    async with Database(db_path) as db:
        await db.migrate()
        inserted = asyncio.Event()
        release = asyncio.Event()
        seen: list[int] = []

        async def writer() -> None:
            with pytest.raises(RuntimeError):
                async with db.transaction() as tx:
                    await tx.execute("INSERT INTO bot_state (key, value) VALUES ('ghost', 'x')")
                    inserted.set()
                    await release.wait()
                    raise RuntimeError("rolled back")

        async def reader() -> None:
            await inserted.wait()
            row = await db.fetchone("SELECT COUNT(*) FROM bot_state WHERE key = 'ghost'")
            seen.append(row[0])

        writing = asyncio.create_task(writer())
        reading = asyncio.create_task(reader())
        await inserted.wait()
        await asyncio.sleep(0.05)
        assert not reading.done(), "the read ran inside another task's open transaction"
        release.set()
        await asyncio.gather(writing, reading)
        assert seen == [0]
        # inside its own transaction a task reads its own rows at once
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO bot_state (key, value) VALUES ('mine', 'y')")
            assert (await tx.fetchone("SELECT value FROM bot_state WHERE key = 'mine'"))[0] == "y"


def test_wheel_ships_the_migrations(tmp_path: Path) -> None:
    """The wheel carries migrations/ as bot/_migrations, so an installed bot finds them."""
    import subprocess
    import zipfile

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(root)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-600:] + proc.stderr[-600:]
    wheel = next(tmp_path.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.startswith("bot/_migrations/"))
    assert shipped == sorted(f"bot/_migrations/{p.name}" for p in (root / "migrations").glob("*.sql"))


async def test_the_database_knows_every_state_the_code_stores(db_path: Path) -> None:
    """Each enum value in bot/states.py passes the matching CHECK constraint; anything else is refused."""
    import sqlite3

    from bot.states import AttachmentKind, CostSource, TurnStatus

    async with Database(db_path) as db:
        await db.migrate()
        conv = await db.execute("INSERT INTO conversations (channel_id, owner_id, model) VALUES (1, 1, 'm')")
        for status in TurnStatus:
            await db.execute("INSERT INTO turns (conversation_id, role, status) VALUES (?, 'assistant', ?)",
                             (conv, status))
        turn = await db.execute("INSERT INTO turns (conversation_id, role) VALUES (?, 'user')", (conv,))
        for kind in AttachmentKind:
            await db.execute("INSERT INTO attachments (turn_id, filename, mime, kind, size) VALUES (?, 'f', 'x', ?, 1)",
                             (turn, kind))
        for source in CostSource:
            await db.execute("INSERT INTO reservations (guild_id, user_id, month, model, amount_nusd, settled_nusd, "
                             "settled_from, settled_at) VALUES (1, 2, '2026-12', 'm', 5, 5, ?, 'now')", (source,))
        for sql, value in (("INSERT INTO turns (conversation_id, role, status) VALUES (1, 'assistant', ?)", "done"),
                           ("INSERT INTO reservations (guild_id, user_id, month, model, amount_nusd, settled_nusd, "
                            "settled_from, settled_at) VALUES (1, 2, '2026-12', 'm', 5, 5, ?, 'now')", "guess")):
            with pytest.raises(sqlite3.IntegrityError):
                await db.execute(sql, (value,))


async def test_migration_3_keeps_the_holds_already_recorded(db_path: Path) -> None:
    migrations = load_migrations()
    async with Database(db_path) as db:
        await db.migrate(migrations[:2])
        await db.execute("INSERT INTO reservations (guild_id, user_id, month, model, amount_nusd) "
                         "VALUES (1, 2, '2026-11', 'm', 7)")
        await db.execute("INSERT INTO reservations (guild_id, user_id, month, model, amount_nusd, settled_nusd, "
                         "settled_from, settled_at) VALUES (1, 2, '2026-11', 'm', 9, 4, 'usage', 'then')")
        assert await db.migrate(migrations[:3]) == [3]
        rows = [tuple(r) for r in await db.fetchall(
            "SELECT amount_nusd, settled_nusd, settled_from FROM reservations ORDER BY id")]
        assert rows == [(7, None, None), (9, 4, "usage")]
        plan = await db.fetchall("EXPLAIN QUERY PLAN SELECT id FROM reservations WHERE settled_at IS NULL")
        assert any("reservations_open" in str(tuple(r)) for r in plan)


async def test_processes_starting_at_once_migrate_a_fresh_database_once(tmp_path: Path) -> None:
    """Two connections (as two bot processes would) migrate one new file at the same moment."""
    versions = [m.version for m in load_migrations()]
    for attempt in range(5):
        path = tmp_path / f"shared-{attempt}.sqlite3"
        first, second = Database(path), Database(path)
        await first.open()
        await second.open()
        try:
            applied = await asyncio.gather(first.migrate(), second.migrate())
            assert sorted(applied[0] + applied[1]) == versions  # each applied by exactly one of them
            assert await second.schema_version() == versions[-1]
        finally:
            await first.close()
            await second.close()
