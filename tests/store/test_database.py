from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import asyncpg
import pytest

from bot.store.connect import database_for
from bot.store.database import Database, Migration, MigrationError, load_migrations, migrations_dir
from bot.store.postgres import PostgresDatabase, numbered, without_password
from bot.store.sqlite import SqliteDatabase
from tests.postgres import Postgres

INTEGRITY_ERRORS = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


async def tables(db: Database) -> set[str]:
    if db.dialect == "sqlite":
        return {r["name"] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
    rows = await db.fetchall("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {r["tablename"] for r in rows}


async def test_fresh_database_is_migrated_in_wal_with_foreign_keys(db_path: Path) -> None:
    async with SqliteDatabase(db_path) as db:
        applied = await db.migrate()
        assert applied == [m.version for m in load_migrations()]
        assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
        assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1
        assert db.busy_timeout_ms == 5000 and (await db.fetchone("PRAGMA busy_timeout"))[0] == 0  # waits: _patiently
        rows = await db.fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == applied
        assert {"conversations", "turns", "attachments"} <= await tables(db)


async def test_a_fresh_postgres_database_is_migrated_with_bigint_snowflakes(postgres: Postgres) -> None:
    async with database_for(await postgres.fresh_url()) as db:
        assert await db.migrate() == [m.version for m in load_migrations(dialect="postgres")]
        assert {"conversations", "turns", "attachments", "reservations", "schema_migrations"} <= await tables(db)
        types = {(r[0], r[1]): r[2] for r in await db.fetchall(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()")}
        assert types["conversations", "thread_id"] == types["turns", "discord_message_id"] == "bigint"
        assert types["attachments", "data"] == "bytea"
        snowflake = 1_312_345_678_901_234_567
        conv = await db.insert(
            "INSERT INTO conversations (guild_id, channel_id, owner_id, model) VALUES (?, ?, ?, 'm')",
            (snowflake, snowflake + 1, snowflake + 2))
        row = await db.fetchone("SELECT guild_id, created_at, now_utc() FROM conversations WHERE id = ?", (conv,))
        assert row[0] == snowflake
        assert len(row[1]) == len("2026-12-02T14:00:11.123Z") and row[1].endswith("Z") and row[1] <= row[2]


async def test_running_twice_changes_nothing(database_url: str) -> None:
    async with database_for(database_url) as db:
        await db.migrate()
        before = await db.fetchall("SELECT * FROM schema_migrations")
    async with database_for(database_url) as db:
        assert await db.migrate() == []
        after = await db.fetchall("SELECT * FROM schema_migrations")
    assert [tuple(r) for r in before] == [tuple(r) for r in after]


async def test_newer_database_is_refused(database_url: str) -> None:
    async with database_for(database_url) as db:
        await db.migrate()
        await db.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'from_the_future')")
    async with database_for(database_url) as db:
        with pytest.raises(MigrationError, match="newer than this code"):
            await db.migrate()


async def test_failed_migration_is_rolled_back_and_not_recorded(database_url: str) -> None:
    good = Migration(1, "good", "CREATE TABLE a (x INTEGER);")
    bad = Migration(2, "bad", "CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);")
    async with database_for(database_url) as db:
        with pytest.raises(MigrationError, match=r"0002_bad failed"):
            await db.migrate([good, bad])
        assert await db.schema_version() == 1
        names = await tables(db)
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


async def test_transaction_rolls_back_and_does_not_swallow_other_tasks_writes(database_url: str) -> None:
    async with database_for(database_url) as db:
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


async def test_a_read_never_sees_another_tasks_uncommitted_rows(database_url: str) -> None:
    """A read from one task while another task's transaction is open sees the rows only if they were
    committed, never rows that are then rolled back: it runs on another connection (SQLite's reader,
    PostgreSQL's pool) at once and sees what was committed."""
    async with database_for(database_url) as db:
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
        assert reading.done() and seen == [0]  # it did not wait for the transaction, nor see inside it
        release.set()
        await asyncio.gather(writing, reading)
        assert seen == [0]
        # inside its own transaction a task reads its own rows at once
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO bot_state (key, value) VALUES ('mine', 'y')")
            assert (await tx.fetchone("SELECT value FROM bot_state WHERE key = 'mine'"))[0] == "y"


async def test_a_write_waits_for_another_processs_lock_without_holding_up_the_event_loop(db_path: Path) -> None:
    """Statements run on the event loop's thread and never wait inside SQLite: while another process
    holds the write lock, a write sleeps and tries again (the event loop runs on meanwhile, reads too),
    lands once the lock is released, and past `busy_timeout_ms` fails with SQLite's own error."""
    async with SqliteDatabase(db_path) as db:
        await db.execute("CREATE TABLE t (x INTEGER)")
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        beating = asyncio.create_task(heartbeat())
        writing = asyncio.create_task(db.execute("INSERT INTO t VALUES (1)"))
        try:
            await asyncio.sleep(0.2)
            assert not writing.done() and ticks >= 10  # waiting, and the loop went on
            assert await db.fetchall("SELECT x FROM t") == []  # reads go on too
            other.execute("ROLLBACK")
            assert await asyncio.wait_for(writing, 1) == 1
            other.execute("BEGIN IMMEDIATE")
            db.busy_timeout_ms = 50
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                await db.execute("INSERT INTO t VALUES (2)")
        finally:
            beating.cancel()
            other.close()
        assert [tuple(r) for r in await db.fetchall("SELECT x FROM t")] == [(1,)]


def file_size(path: Path) -> int:
    return path.stat().st_size


async def test_the_log_is_checkpointed_on_aiosqlites_thread_every_so_many_writes(db_path: Path) -> None:
    """Automatic checkpoints (which would run inside a commit, on the event loop's thread) are off; the
    store copies the log back into the file itself every `CHECKPOINT_EVERY` writes."""
    async with SqliteDatabase(db_path) as db:
        db.CHECKPOINT_EVERY = 5
        assert (await db.fetchone("PRAGMA wal_autocheckpoint"))[0] == 0
        await db.execute("CREATE TABLE t (x BLOB)")
        size = file_size(db_path)
        for _ in range(3):
            await db.execute("INSERT INTO t VALUES (zeroblob(20000))")
        assert file_size(db_path) == size  # the rows are in the log only
        await db.execute("INSERT INTO t VALUES (zeroblob(20000))")  # the fifth write
        assert db._checkpointing is not None
        await db._checkpointing
        assert file_size(db_path) > size + 60_000


async def test_reads_outside_a_transaction_go_to_the_reader_and_never_wait_for_a_writer(db_path: Path) -> None:
    """A plain read runs on a read-only connection of its own: it does not wait for another process's
    write lock, nor for a write of this process that waits for it, and sees every committed row."""
    async with SqliteDatabase(db_path) as db:
        await db.migrate()
        await db.execute("INSERT INTO bot_state (key, value) VALUES ('k', 'v')")
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        other.execute("INSERT INTO bot_state (key, value) VALUES ('theirs', 'uncommitted')")
        waiting = asyncio.create_task(db.execute("INSERT INTO bot_state (key, value) VALUES ('mine', 'later')"))
        try:
            await asyncio.sleep(0.02)
            rows = await asyncio.wait_for(db.fetchall("SELECT key, value FROM bot_state ORDER BY key"), 1)
            assert [tuple(r) for r in rows] == [("k", "v")]
            assert not waiting.done()
        finally:
            other.execute("ROLLBACK")
            other.close()
        await waiting
        assert db._reader is not None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            db._reader.execute("INSERT INTO bot_state (key, value) VALUES ('x', 'y')")


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
    sources = (root / "migrations").rglob("*.sql")
    assert shipped == sorted(f"bot/_migrations/{p.relative_to(root / 'migrations')}" for p in sources)
    assert "bot/_migrations/postgres/0001_conversations.sql" in shipped


async def test_the_database_knows_every_state_the_code_stores(migrated_db: Database) -> None:
    """Each enum value in bot/states.py passes the matching CHECK constraint; anything else is refused."""
    from bot.states import AttachmentKind, CostSource, TurnStatus

    db = migrated_db
    conv = await db.insert("INSERT INTO conversations (channel_id, owner_id, model) VALUES (1, 1, 'm')")
    for status in TurnStatus:
        await db.execute("INSERT INTO turns (conversation_id, role, status) VALUES (?, 'assistant', ?)",
                         (conv, status))
    turn = await db.insert("INSERT INTO turns (conversation_id, role) VALUES (?, 'user')", (conv,))
    for kind in AttachmentKind:
        await db.execute("INSERT INTO attachments (turn_id, filename, mime, kind, size) VALUES (?, 'f', 'x', ?, 1)",
                         (turn, kind))
    for source in CostSource:
        await db.execute("INSERT INTO reservations (guild_id, user_id, month, model, amount_nusd, settled_nusd, "
                         "settled_from, settled_at) VALUES (1, 2, '2026-12', 'm', 5, 5, ?, 'now')", (source,))
    for sql, value in (("INSERT INTO turns (conversation_id, role, status) VALUES (1, 'assistant', ?)", "done"),
                       ("INSERT INTO reservations (guild_id, user_id, month, model, amount_nusd, settled_nusd, "
                        "settled_from, settled_at) VALUES (1, 2, '2026-12', 'm', 5, 5, ?, 'now')", "guess")):
        with pytest.raises(INTEGRITY_ERRORS):
            await db.execute(sql, (value,))


async def test_migration_3_keeps_the_holds_already_recorded(database_url: str) -> None:
    async with database_for(database_url) as db:
        migrations = load_migrations(dialect=db.dialect)
        await db.migrate(migrations[:2])
        await db.execute("INSERT INTO reservations (guild_id, user_id, month, model, amount_nusd) "
                         "VALUES (1, 2, '2026-11', 'm', 7)")
        await db.execute("INSERT INTO reservations (guild_id, user_id, month, model, amount_nusd, settled_nusd, "
                         "settled_from, settled_at) VALUES (1, 2, '2026-11', 'm', 9, 4, 'usage', 'then')")
        assert await db.migrate(migrations[:3]) == [3]
        rows = [tuple(r) for r in await db.fetchall(
            "SELECT amount_nusd, settled_nusd, settled_from FROM reservations ORDER BY id")]
        assert rows == [(7, None, None), (9, 4, "usage")]
        with pytest.raises(INTEGRITY_ERRORS):
            await db.execute("UPDATE reservations SET settled_from = 'guess' WHERE amount_nusd = 9")
        if db.dialect == "sqlite":
            plan = await db.fetchall("EXPLAIN QUERY PLAN SELECT id FROM reservations WHERE settled_at IS NULL")
            assert any("reservations_open" in str(tuple(r)) for r in plan)
        else:
            indexes = {r[0] for r in await db.fetchall(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'reservations' "
                "AND schemaname = current_schema()")}
            assert {"reservations_open", "reservations_over_hold"} <= indexes


def test_postgres_takes_its_own_file_for_a_step_where_the_dialects_differ(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id INTEGER PRIMARY KEY);")
    (tmp_path / "0002_b.sql").write_text("CREATE INDEX b ON a (id);")
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "0001_a.sql").write_text("CREATE TABLE a (id BIGINT PRIMARY KEY);")
    assert [m.sql for m in load_migrations(tmp_path)] == ["CREATE TABLE a (id INTEGER PRIMARY KEY);",
                                                           "CREATE INDEX b ON a (id);"]
    assert [m.sql for m in load_migrations(tmp_path, "postgres")] == ["CREATE TABLE a (id BIGINT PRIMARY KEY);",
                                                                       "CREATE INDEX b ON a (id);"]
    (tmp_path / "postgres" / "0002_c.sql").write_text("SELECT 1;")  # a name the step does not have
    with pytest.raises(MigrationError, match=r"postgres/0002_c\.sql matches no migration"):
        load_migrations(tmp_path, "postgres")


def test_the_shipped_postgres_steps_match_the_sqlite_ones() -> None:
    sqlite, postgres = load_migrations(), load_migrations(dialect="postgres")
    assert [(m.version, m.name) for m in sqlite] == [(m.version, m.name) for m in postgres]
    assert sqlite[0].sql != postgres[0].sql and "BIGINT" in postgres[0].sql


async def test_processes_starting_together_migrate_once(postgres: Postgres) -> None:
    """Two owners (two pools, as two processes would have) migrate one new database at the same moment:
    the advisory lock lets one apply every step; the other waits and finds nothing left to do."""
    url = await postgres.fresh_url()
    first, second = PostgresDatabase(url), PostgresDatabase(url)
    async with first, second:
        results = await asyncio.gather(*(db.migrate() for db in (first, second) for _ in range(2)))
        every = [m.version for m in load_migrations(dialect="postgres")]
        assert sorted(results, key=len) == [[], [], [], every]
        assert (await first.fetchone("SELECT COUNT(*) FROM schema_migrations"))[0] == len(every)


def test_placeholders_are_numbered_for_postgres_outside_quoted_text() -> None:
    assert numbered("SELECT ? FROM t WHERE a = ? AND b = 'x?y' AND c = ?::text") == (
        "SELECT $1 FROM t WHERE a = $2 AND b = 'x?y' AND c = $3::text", ())
    assert numbered("WHERE a = :c AND b IN (SELECT x LIMIT :n) AND d = :c AND e = ':z'") == (
        "WHERE a = $1 AND b IN (SELECT x LIMIT $2) AND d = $1 AND e = ':z'", ("c", "n"))
    assert numbered("SELECT now_utc(), strftime('%H:%M', 'now')") == ("SELECT now_utc(), strftime('%H:%M', 'now')", ())
    with pytest.raises(ValueError, match="not both"):
        numbered("SELECT ? WHERE a = :b")


def test_a_database_url_names_its_backend(tmp_path: Path) -> None:
    sqlite = database_for(f"sqlite:///{tmp_path}/a.sqlite3")
    assert isinstance(sqlite, SqliteDatabase) and sqlite.path == tmp_path / "a.sqlite3"
    assert isinstance(database_for("sqlite:///data/bot.sqlite3"), SqliteDatabase)
    postgres = database_for("postgresql://bot:s3cret@db.internal:5432/bot")
    assert isinstance(postgres, PostgresDatabase) and postgres.describe() == "postgresql://bot:***@db.internal:5432/bot"
    assert without_password("postgresql://bot@/bot?host=/run/postgresql") == "postgresql://bot@/bot?host=/run/postgresql"
    with pytest.raises(ValueError, match="sqlite:///path or postgresql://"):
        database_for("mysql://x")


async def test_processes_starting_at_once_migrate_a_fresh_database_once(tmp_path: Path) -> None:
    """Two connections (as two bot processes would) migrate one new file at the same moment."""
    versions = [m.version for m in load_migrations()]
    for attempt in range(5):
        path = tmp_path / f"shared-{attempt}.sqlite3"
        first, second = SqliteDatabase(path), SqliteDatabase(path)
        await first.open()
        await second.open()
        try:
            applied = await asyncio.gather(first.migrate(), second.migrate())
            assert sorted(applied[0] + applied[1]) == versions  # each applied by exactly one of them
            assert await second.schema_version() == versions[-1]
        finally:
            await first.close()
            await second.close()
