"""The database interface the repositories use, and what both backends share: errors, durable writes,
the migration files.

There are two backends: SQLite through aiosqlite (bot/store/sqlite.py, the default) and PostgreSQL
through an asyncpg pool (bot/store/postgres.py); `bot.store.connect.open_database` picks one from
`DATABASE_URL`. Repositories write each statement once, in the dialect both accept, with `?` (or
`:name`) placeholders and `now_utc()` for the current time as an ISO-8601 UTC string such as
`2026-12-02T14:00:11.123Z` (a function each backend provides); the PostgreSQL backend numbers the
placeholders. A new row's id comes from `insert` (`RETURNING id` on both).

Migrations are plain numbered SQL files (`NNNN_name.sql`). They live in the repository's top-level
`migrations/` folder and are shipped inside the wheel as `bot/_migrations`, so the bot finds them
wherever it is started from. A step whose SQL differs on PostgreSQL has its own file of the same name
in `migrations/postgres/`; a step without one is portable SQL and runs on both. Each step is applied
in its own transaction and recorded in `schema_migrations`; a database that has migrations this code
does not know is refused.
"""

from __future__ import annotations

import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol, Self, TypeVar

import asyncpg

from bot.retry import call_with_retries

T = TypeVar("T")
Dialect = Literal["sqlite", "postgres"]
Params = tuple[Any, ...] | dict[str, Any]

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


# What a statement raises when the database cannot take it right now: SQLite locked by another process
# past the busy timeout, a full disk, an I/O error; PostgreSQL's connection lost or refused, a deadlock or
# serialization failure, the server out of connections or disk, or shutting down. Callers that must not
# lose data retry on these (every write they retry is safe to run twice).
STORE_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.Error, OSError,
    asyncpg.PostgresConnectionError, asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.InsufficientResourcesError, asyncpg.exceptions.OperatorInterventionError,
)


class Row(Protocol):
    """A result row of either backend: by column name or position, or as a tuple of its values."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


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


class DatabaseUnavailable(Exception):
    """The database cannot be opened: no such file or folder, server down, wrong password, no such database."""


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


def _read_folder(folder: Path) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text(encoding="utf-8")))
    return found


def load_migrations(folder: Path | None = None, dialect: Dialect = "sqlite") -> list[Migration]:
    """The steps in order: `folder/NNNN_name.sql`, where PostgreSQL takes `folder/postgres/NNNN_name.sql`
    instead when that file exists. Each PostgreSQL file must match a step by version and name."""
    folder = folder or migrations_dir()
    found = _read_folder(folder)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must run 1, 2, 3… without gaps, found {versions}")
    variants = _read_folder(folder / "postgres") if (folder / "postgres").is_dir() else []
    steps = {(m.version, m.name) for m in found}
    for variant in variants:
        if (variant.version, variant.name) not in steps:
            raise MigrationError(f"postgres/{variant.version:04d}_{variant.name}.sql matches no migration of "
                                 "the same version and name")
    if dialect == "sqlite":
        return found
    replaced = {m.version: m for m in variants}
    return [replaced.get(m.version, m) for m in found]


def check_not_newer(current: int, migrations: list[Migration], where: str) -> None:
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise MigrationError(
            f"the database at {where} is at schema version {current}, newer than this code "
            f"knows ({latest}); upgrade the bot or restore a matching backup"
        )


class Database(ABC):
    """The one owner of the process's database connection(s).

    Statements outside `transaction()` run alone and see only committed rows; inside it, the calling
    task's statements (on this object, or the object the block yields) run in that transaction, which
    is rolled back on any exception, cancellation included. Reservations rely on it: see store/spend.py.
    """

    dialect: Dialect

    @abstractmethod
    def describe(self) -> str:
        """Where the data is, for people: a path, or a URL without its password."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Database]:
        """A transaction; transactions do not nest."""

    @abstractmethod
    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    @abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement; return how many rows it changed."""

    @abstractmethod
    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one INSERT of one row into a table with an `id` column; return the new row's id."""

    @abstractmethod
    async def forget_erased(self) -> None:
        """Rows were erased: make the backend drop copies of their old contents it still keeps."""

    @abstractmethod
    async def schema_version(self) -> int: ...

    @abstractmethod
    async def migrate(self, migrations: list[Migration] | None = None) -> list[int]:
        """Apply every migration not yet recorded, in order. Returns the versions applied."""
