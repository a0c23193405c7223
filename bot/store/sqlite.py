"""The SQLite backend: WAL, `BEGIN IMMEDIATE` transactions, statements run on the event loop's thread.

`BEGIN IMMEDIATE` takes SQLite's one write lock for the whole file at once, so a transaction is
alone among every process that writes to the file: a reservation's read of the totals and its write
cannot interleave with another's (store/spend.py).

Where statements run: an indexed statement on a WAL database takes tens of microseconds, less than
the hand-over to a worker thread alone, and the result then waits for a turn of the event loop. With a
hundred questions at once those turns, paid one after another by every transaction, were most of the
time before their requests went out. So statements run right here, and never wait inside SQLite: the
writer's `busy_timeout` is 0, and while another process holds the write lock a statement sleeps
(without holding up the event loop, backing off) and tries again, for `busy_timeout_ms` in all, as
SQLite's own busy handler would. Reads outside a transaction use a second, read-only connection: in WAL
mode a reader never waits for a writer and sees only what was committed. What may take long runs on
aiosqlite's thread: migrations, and checkpoints, which copy the log back into the file (the automatic
ones would run inside a commit; here one runs every `CHECKPOINT_EVERY` writes).
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
    cursor = conn.execute(sql, params)
    try:
        return step(cursor)
    finally:
        cursor.close()


def _rowcount(cursor: sqlite3.Cursor) -> int:
    return int(cursor.rowcount)


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Another connection holds the lock this statement needs (SQLITE_BUSY or SQLITE_LOCKED)."""
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _waiting_in_sqlite(conn: sqlite3.Connection, busy_ms: int, work: Callable[[sqlite3.Connection], T]) -> T:
    """On aiosqlite's thread: `work`, with SQLite's own busy handler waiting up to `busy_ms`."""
    conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
    try:
        return work(conn)
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


class SqliteDatabase(Database):
    """Owns the process's SQLite connections: the writer (opened by aiosqlite, whose thread runs the
    migrations and checkpoints) and the reader.

    The writer runs in autocommit mode; `transaction()` opens an explicit `BEGIN IMMEDIATE` so that
    read-then-write sequences (quota reservations) are atomic. A transaction has the writer to itself:
    another task's write waits for its end, and another task's read goes to the reader, which sees
    what was committed (never rows that may yet be rolled back).
    """

    dialect: Dialect = "sqlite"
    CHECKPOINT_EVERY = 500  # writes between two checkpoints of the write-ahead log
    RETRY_FIRST, RETRY_LONGEST = 0.001, 0.05  # seconds between tries while another process writes

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms  # how long a statement waits for another process's write lock
        self._conn: aiosqlite.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()  # the writer, for a transaction, a write, a migration or a checkpoint
        self._tx_owner: asyncio.Task[Any] | None = None
        self._writes = 0  # since the last checkpoint
        self._checkpointing: asyncio.Task[None] | None = None

    def describe(self) -> str:
        return str(self.path)

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("the database is not open")
        return self._conn

    @property
    def _writer(self) -> sqlite3.Connection:
        return self.conn._conn

    async def open(self) -> None:
        if self._conn is not None:
            return
        try:
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread off: opened on aiosqlite's thread, used on the event loop's
            conn = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseUnavailable(f"cannot open {self.path}: {exc}") from exc
        conn.row_factory = aiosqlite.Row
        await conn.create_function("now_utc", 0, now_utc)
        await conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")  # while opening, on the thread
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA secure_delete = ON")  # erased text is overwritten, not left in free pages
        await conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints run on the thread (`_wrote`)
        await conn.execute("PRAGMA busy_timeout = 0")  # from now on, waits happen in `_patiently`
        try:
            self._reader = self._open_reader()
        except sqlite3.Error as exc:
            await conn.close()
            raise DatabaseUnavailable(f"cannot open {self.path} for reading: {exc}") from exc
        self._conn = conn

    def _open_reader(self) -> sqlite3.Connection | None:
        """The connection that reads run on (see `_read`); none for an in-memory database, which a second
        connection would not share."""
        if str(self.path) == ":memory:":
            return None
        reader = sqlite3.connect(self.path, isolation_level=None, timeout=0)  # waits happen in `_patiently`
        reader.row_factory = sqlite3.Row
        reader.create_function("now_utc", 0, now_utc)
        reader.execute("PRAGMA query_only = ON")
        return reader

    async def close(self) -> None:
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()
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
            writer = self._writer
            await self._patiently(partial(writer.execute, "BEGIN IMMEDIATE"))
            self._tx_owner = asyncio.current_task()
            try:
                yield self
            except BaseException:
                self._end(writer, "ROLLBACK")
                raise
            else:
                self._end(writer, "COMMIT")
            finally:
                self._tx_owner = None
        self._wrote()

    @staticmethod
    def _end(writer: sqlite3.Connection, sql: str) -> None:
        """COMMIT or ROLLBACK; a COMMIT that fails (a full disk) leaves nothing half-done behind it."""
        try:
            writer.execute(sql)
        finally:
            if writer.in_transaction:
                writer.execute("ROLLBACK")

    async def _patiently(self, attempt: Callable[[], T]) -> T:
        """`attempt`, tried again while another connection holds the lock it needs, for `busy_timeout_ms`
        in all; then SQLite's "database is locked" goes to the caller."""
        loop = asyncio.get_running_loop()
        give_up: float | None = None
        delay = self.RETRY_FIRST
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                now = loop.time()
                give_up = now + self.busy_timeout_ms / 1000 if give_up is None else give_up
                if not _busy(exc) or now >= give_up:
                    raise
            await asyncio.sleep(min(delay, give_up - now))
            delay = min(delay * 2, self.RETRY_LONGEST)

    async def _write(self, step: Callable[[sqlite3.Cursor], T], sql: str, params: Params) -> T:
        """A statement on the writer: at once inside this task's own transaction, else once no other
        task's transaction holds the writer."""
        if self._in_own_transaction():
            return _statement(self._writer, step, sql, params)
        async with self._lock:
            result = await self._patiently(partial(_statement, self._writer, step, sql, params))
        self._wrote()
        return result

    async def _read(self, step: Callable[[sqlite3.Cursor], T], sql: str, params: Params) -> T:
        """A SELECT outside a transaction goes to the reader; anything else (a write with RETURNING, a
        PRAGMA, a read inside a transaction) to the writer."""
        reader = self._reader
        if reader is None or sql[:6].upper() != "SELECT" or self._in_own_transaction():
            return await self._write(step, sql, params)
        return await self._patiently(partial(_statement, reader, step, sql, params))

    def _wrote(self) -> None:
        """Count a write; every `CHECKPOINT_EVERY` of them, copy the log back into the file (on aiosqlite's
        thread, holding the writer: a checkpoint writes the file and waits for the disk)."""
        self._writes += 1
        if self._writes >= self.CHECKPOINT_EVERY and self._checkpointing is None:
            self._writes = 0
            self._checkpointing = asyncio.create_task(self._checkpoint("PASSIVE"), name="sqlite-checkpoint")
            self._checkpointing.add_done_callback(self._checkpointed)

    def _checkpointed(self, task: asyncio.Task[None]) -> None:
        self._checkpointing = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not checkpoint the database's log; trying again later", error=repr(task.exception()))

    async def _checkpoint(self, mode: str) -> None:
        await self._on_thread(lambda c: c.execute(f"PRAGMA wal_checkpoint({mode})").fetchall())

    async def _on_thread(self, work: Callable[[sqlite3.Connection], object]) -> None:
        """`work` on the writer, on aiosqlite's thread (it may take long: a migration, a checkpoint),
        holding the writer, with SQLite's own busy handler waiting up to `busy_timeout_ms` there."""
        async with self._lock:
            conn = self.conn
            await conn._execute(_waiting_in_sqlite, conn._conn, self.busy_timeout_ms, work)  # type: ignore[no-untyped-call]

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return await self._read(sqlite3.Cursor.fetchone, sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._read(sqlite3.Cursor.fetchall, sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self._write(_rowcount, sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        row = await self._write(sqlite3.Cursor.fetchone, f"{sql} RETURNING id", params)
        assert row is not None
        return int(row[0])

    async def forget_erased(self) -> None:
        """The old text may still sit in the write-ahead log: copy it out and empty it (secure_delete
        already overwrites freed pages in the file itself)."""
        await self._checkpoint("TRUNCATE")

    # -- migrations ---------------------------------------------------------------------------

    async def schema_version(self) -> int:
        await self._ensure_migrations_table()
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        return int(row["v"]) if row else 0

    async def _ensure_migrations_table(self) -> None:
        await self.execute(
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
            await self._on_thread(lambda c: c.executescript(script))
        except Exception as exc:
            if self.conn.in_transaction:
                self._writer.execute("ROLLBACK")
            if await self.schema_version() >= migration.version:
                return False
            raise MigrationError(f"migration {migration.version:04d}_{migration.name} failed: {exc}") from exc
        return True
