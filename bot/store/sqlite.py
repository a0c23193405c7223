"""The SQLite backend: one aiosqlite connection, WAL, and `BEGIN IMMEDIATE` transactions.

`BEGIN IMMEDIATE` takes SQLite's one write lock for the whole file at once, so a transaction is
alone among every process that writes to the file: a reservation's read of the totals and its write
cannot interleave with another's (store/spend.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.logs import get_logger
from bot.store.database import (
    Database,
    DatabaseUnavailable,
    Dialect,
    Migration,
    MigrationError,
    Params,
    Row,
    check_not_newer,
    load_migrations,
)

log = get_logger(__name__)


def now_utc() -> str:
    """The time as the schema stores it, the same text as `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


T = TypeVar("T")


def _statement(conn: sqlite3.Connection, step: Callable[[sqlite3.Cursor], T], sql: str, params: Params) -> T:
    """Runs in aiosqlite's thread."""
    cursor = conn.execute(sql, params)
    try:
        return step(cursor)
    finally:
        cursor.close()


def _rowcount(cursor: sqlite3.Cursor) -> int:
    return int(cursor.rowcount)


class SqliteDatabase(Database):
    """Owns the process's single aiosqlite connection.

    The connection runs in autocommit mode; `transaction()` opens an explicit `BEGIN IMMEDIATE`
    so that read-then-write sequences (quota reservations) are atomic. Every statement outside a
    transaction waits for the one in progress to end; while none is open, statements go straight to
    the connection's thread, which runs them back to back in the order they came (many answers'
    reads and writes in flight at once, not one round trip after another).
    """

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None
        # One connection is shared by every task: a transaction has it to itself (`_lock`, held from
        # its BEGIN to its end), so a rollback in one task can never discard a statement another task
        # ran meanwhile, and a read never sees another task's uncommitted rows. The connection's thread
        # runs what it is given in order: a statement handed over before a BEGIN runs before it, one
        # handed over after the transaction's end runs after it.
        self._lock = asyncio.Lock()
        self._tx_owner: asyncio.Task[Any] | None = None

    def describe(self) -> str:
        return str(self.path)

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("the database is not open")
        return self._conn

    async def open(self) -> None:
        if self._conn is not None:
            return
        try:
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread off: a transaction's own statements run on the event loop's thread (`_run`)
            conn = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseUnavailable(f"cannot open {self.path}: {exc}") from exc
        conn.row_factory = aiosqlite.Row
        await conn.create_function("now_utc", 0, now_utc)
        await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA secure_delete = ON")  # erased text is overwritten, not left in free pages
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    def _in_own_transaction(self) -> bool:
        return self._tx_owner is not None and self._tx_owner is asyncio.current_task()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        """`BEGIN IMMEDIATE` … `COMMIT`, rolled back on any exception (including cancellation).

        Inside the block, `execute`/`fetchone`/`fetchall` on this object run in the transaction.
        """
        if self._in_own_transaction():
            raise RuntimeError("transactions do not nest")
        async with self._lock:
            conn = self.conn
            await self._hand_over(conn, _rowcount, "BEGIN IMMEDIATE", ())
            self._tx_owner = asyncio.current_task()
            try:
                yield self
            except BaseException:
                await asyncio.shield(self._hand_over(conn, _rowcount, "ROLLBACK", ()))
                raise
            else:
                await asyncio.shield(self._hand_over(conn, _rowcount, "COMMIT", ()))
            finally:
                self._tx_owner = None

    async def _run(self, step: Callable[[sqlite3.Cursor], T], sql: str, params: Params) -> T:
        """One statement, read by `step`, its cursor closed.

        - With no transaction about, it is handed to the connection's thread at once, in one trip
          (`conn.execute` + a fetch + the cursor's close would be three).
        - While another task's transaction is open or waiting, it takes its turn after it (nobody reads
          rows that may yet be rolled back), handed over before the turn passes on.
        - Inside this task's own transaction it runs right here, on the event loop's thread. The write
          lock is the transaction's since its BEGIN, so nothing here waits for another process, and the
          connection's thread is idle (every other task waits for the transaction's end): a round trip
          would only add a hand-over and a turn of the event loop per statement, with every other
          transaction waiting behind this one. BEGIN, which may wait for another process's write, and
          COMMIT, which may copy the log back into the file, stay on the connection's thread.
        """
        conn = self.conn
        if self._lock.locked():
            if self._in_own_transaction():
                return _statement(conn._conn, step, sql, params)
            async with self._lock:
                queued = self._hand_over(conn, step, sql, params)
            return await queued
        return await self._hand_over(conn, step, sql, params)

    @staticmethod
    def _hand_over(conn: aiosqlite.Connection, step: Callable[[sqlite3.Cursor], T], sql: str,
                   params: Params) -> asyncio.Future[T]:
        """Queue the statement on the connection's thread now (aiosqlite's `_execute` queues it only once
        awaited, too late to keep a place in line): a future for its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        conn._tx.put_nowait((future, partial(_statement, conn._conn, step, sql, params)))
        return future

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return await self._run(sqlite3.Cursor.fetchone, sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._run(sqlite3.Cursor.fetchall, sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self._run(_rowcount, sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        row = await self._run(sqlite3.Cursor.fetchone, f"{sql} RETURNING id", params)
        assert row is not None
        return int(row[0])

    async def forget_erased(self) -> None:
        """The old text may still sit in the write-ahead log: copy it out and empty it (secure_delete
        already overwrites freed pages in the file itself)."""
        await self.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- migrations ---------------------------------------------------------------------------

    async def schema_version(self) -> int:
        await self._ensure_migrations_table()
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        return int(row["v"]) if row else 0

    async def _ensure_migrations_table(self) -> None:
        await self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
            ")"
        )

    async def migrate(self, migrations: list[Migration] | None = None) -> list[int]:
        migrations = load_migrations(dialect="sqlite") if migrations is None else migrations
        current = await self.schema_version()
        check_not_newer(current, migrations, str(self.path))
        applied: list[int] = []
        for migration in migrations:
            if migration.version <= current:
                continue
            if await self._apply(migration):
                log.info("migration applied", version=migration.version, name=migration.name)
                applied.append(migration.version)
        return applied

    async def _apply(self, migration: Migration) -> bool:
        """Apply one step; False when another process applied it meanwhile (its failure here is then
        expected: SQLite cannot test the version and run the script in one transaction)."""
        script = (
            "BEGIN IMMEDIATE;\n"
            f"{migration.sql}\n;\n"
            f"INSERT INTO schema_migrations (version, name) VALUES ({migration.version}, "
            f"'{migration.name}');\nCOMMIT;"
        )
        try:
            async with self._lock:
                await self.conn.executescript(script)
        except Exception as exc:
            if self.conn.in_transaction:
                await self.conn.execute("ROLLBACK")
            if await self.schema_version() >= migration.version:
                return False
            raise MigrationError(f"migration {migration.version:04d}_{migration.name} failed: {exc}") from exc
        return True
