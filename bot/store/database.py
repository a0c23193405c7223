"""The one owner of the SQLite connection, and the migration runner.

Migrations are plain numbered SQL files (`NNNN_name.sql`). They live in the repository's top-level
`migrations/` folder and are shipped inside the wheel as `bot/_migrations`, so the bot finds them
wherever it is started from. Each is applied in its own transaction and recorded in
`schema_migrations`; a database that has migrations this code does not know is refused.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.logs import get_logger
from bot.retry import call_with_retries

log = get_logger(__name__)
T = TypeVar("T")

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


# What a statement raises when the database cannot take it right now: locked by another process past
# the busy timeout, a full disk, an I/O error. Callers that must not lose data retry on these.
STORE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, OSError)


@dataclass(frozen=True, slots=True)
class Durability:
    """How long a write that must land (a settlement, an answer's record) is retried when the
    database cannot take it: backoff from `first_delay` doubling to `max_delay`, for `budget` seconds."""

    budget: float = 30.0
    first_delay: float = 0.05
    max_delay: float = 2.0

    def schedule(self, attempt: int, error: Exception, elapsed: float) -> float | None:
        delay = min(self.max_delay, self.first_delay * 2 ** (attempt - 1))
        return delay if elapsed + delay <= self.budget else None

    async def write(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """`await operation()` until it lands; past the budget its last error is raised."""
        return await call_with_retries(operation, self.schedule, retry_on=STORE_ERRORS, what=what)


class MigrationError(Exception):
    """The database cannot be brought to the schema this code expects."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_dir() -> Path:
    """Where the migrations are: inside the installed package, else next to the source tree."""
    packaged = resources.files("bot").joinpath("_migrations")
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[2] / "migrations"
    if source.is_dir():
        return source
    raise MigrationError("cannot find the migrations folder (looked in the bot package and the source tree)")


def load_migrations(folder: Path | None = None) -> list[Migration]:
    folder = folder or migrations_dir()
    found: list[Migration] = []
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must run 1, 2, 3… without gaps, found {versions}")
    return found


class Database:
    """Owns the process's single aiosqlite connection.

    The connection runs in autocommit mode; `transaction()` opens an explicit `BEGIN IMMEDIATE`
    so that read-then-write sequences (quota reservations) are atomic. Every statement outside a
    transaction waits for the one in progress to end.
    """

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None
        # One connection is shared by every task: statements and transactions take turns, so a
        # rollback in one task can never discard a statement another task ran meanwhile, and a read
        # never sees another task's uncommitted rows.
        self._lock = asyncio.Lock()
        self._tx_owner: asyncio.Task[Any] | None = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("the database is not open")
        return self._conn

    async def open(self) -> None:
        if self._conn is not None:
            return
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
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

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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
            await conn.execute("BEGIN IMMEDIATE")
            self._tx_owner = asyncio.current_task()
            try:
                yield self
            except BaseException:
                await asyncio.shield(conn.execute("ROLLBACK"))
                raise
            else:
                await asyncio.shield(conn.execute("COMMIT"))
            finally:
                self._tx_owner = None

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, for one statement: inside this task's own transaction at once, else after
        any other task's transaction has ended, so nobody reads rows that may yet be rolled back."""
        if self._in_own_transaction():
            yield self.conn
            return
        async with self._lock:
            yield self.conn

    async def fetchone(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> aiosqlite.Row | None:
        async with self._turn() as conn, conn.execute(sql, params) as cursor:
            row: aiosqlite.Row | None = await cursor.fetchone()
            return row

    async def fetchall(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[aiosqlite.Row]:
        async with self._turn() as conn, conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int:
        """Run one write statement; return the last inserted row id."""
        async with self._turn() as conn, conn.execute(sql, params) as cursor:
            return int(cursor.lastrowid or 0)

    async def execute_rowcount(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int:
        """Run one write statement; return how many rows it changed."""
        async with self._turn() as conn, conn.execute(sql, params) as cursor:
            return int(cursor.rowcount)

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

    async def _recorded(self, version: int) -> bool:
        return await self.fetchone("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)) is not None

    async def migrate(self, migrations: list[Migration] | None = None) -> list[int]:
        """Apply every migration not yet recorded, in order. Returns the versions applied.

        Several processes may start at once on one database: a migration's script and its record are one
        transaction, so one that fails because another process applied it first is found recorded, and skipped."""
        migrations = load_migrations() if migrations is None else migrations
        current = await self.schema_version()
        latest = migrations[-1].version if migrations else 0
        if current > latest:
            raise MigrationError(
                f"the database at {self.path} is at schema version {current}, newer than this code "
                f"knows ({latest}); upgrade the bot or restore a matching backup"
            )
        applied: list[int] = []
        for migration in migrations:
            if migration.version <= current:
                continue
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
                if await self._recorded(migration.version):  # another process starting at once applied it
                    log.info("migration applied by another process", version=migration.version)
                    continue
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed: {exc}"
                ) from exc
            log.info("migration applied", version=migration.version, name=migration.name)
            applied.append(migration.version)
        return applied
