"""The PostgreSQL backend: an asyncpg pool, owned here and closed on shutdown.

Statements outside a transaction take a pooled connection each (autocommit). `transaction()` holds one
connection for the block; the calling task's statements go to it. Transactions are READ COMMITTED:
each statement sees what was committed before it began, and a row one transaction changed stays locked
to others until it ends, which is what keeps quota holds exact across processes (store/spend.py).

Migrations run on one connection that holds `pg_advisory_lock(MIGRATION_LOCK)` throughout, so
processes starting together migrate once: the others wait, then find nothing left to apply.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

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
Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"  # a pooled connection

MIGRATION_LOCK = 0x6F72_6462_6D69_6772  # the key of the session advisory lock migrations run under

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|\?|:([A-Za-z_]\w*)")


def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """`?` → `$1, $2, …`, or `:name` → `$n` (the names returned in their order); quoted text and
    `::` casts are left alone."""
    names: list[str] = []
    count = 0

    def swap(match: re.Match[str]) -> str:
        nonlocal count
        text, name = match.group(0), match.group(1)
        if text == "?":
            count += 1
            return f"${count}"
        if name:
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"
        return text

    converted = _TOKEN.sub(swap, sql)
    if count and names:
        raise ValueError("a statement uses either ? or :name placeholders, not both")
    return converted, tuple(names)


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class PostgresDatabase(Database):
    dialect: Dialect = "postgres"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._sizes = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None
        self._tx: dict[asyncio.Task[Any], Conn] = {}
        self._statements: dict[str, tuple[str, tuple[str, ...]]] = {}

    def describe(self) -> str:
        return without_password(self.url)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the database is not open")
        return self._pool

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=self._sizes[0], max_size=self._sizes[1])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(f"cannot connect to {self.describe()}: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        task = asyncio.current_task()
        assert task is not None
        if task in self._tx:
            raise RuntimeError("transactions do not nest")
        async with self.pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            self._tx[task] = conn
            try:
                yield self
            except BaseException:
                await asyncio.shield(self._roll_back(transaction))
                raise
            else:
                await asyncio.shield(transaction.commit())
            finally:
                del self._tx[task]

    @staticmethod
    async def _roll_back(transaction: Transaction) -> None:
        """Roll back; on a connection that is gone (the server rolled back then) the error that ended the
        block is the one to raise, not one about the lost connection. The pool drops a broken connection
        and rolls back any it gets back in a transaction."""
        try:
            await transaction.rollback()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.info("rollback not possible: the connection is gone", error=repr(exc))

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        """This task's transaction's connection, else a pooled one for one statement."""
        task = asyncio.current_task()
        if task is not None and task in self._tx:
            yield self._tx[task]
            return
        async with self.pool.acquire() as conn:
            yield conn

    def _statement(self, sql: str, params: Params) -> tuple[str, list[Any]]:
        if sql not in self._statements:
            self._statements[sql] = numbered(sql)
        converted, names = self._statements[sql]
        if isinstance(params, dict):
            return converted, [params[name] for name in names]
        return converted, list(params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        query, args = self._statement(sql, params)
        async with self._connection() as conn:
            row: Row | None = await conn.fetchrow(query, *args)
            return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        query, args = self._statement(sql, params)
        async with self._connection() as conn:
            return list(await conn.fetch(query, *args))

    async def execute(self, sql: str, params: Params = ()) -> int:
        query, args = self._statement(sql, params)
        async with self._connection() as conn:
            status = await conn.execute(query, *args)
        count = status.rsplit(" ", 1)[-1]  # "UPDATE 3", "INSERT 0 1", "CREATE TABLE"
        return int(count) if count.isdigit() else 0

    async def insert(self, sql: str, params: Params = ()) -> int:
        query, args = self._statement(f"{sql} RETURNING id", params)
        async with self._connection() as conn:
            return int(await conn.fetchval(query, *args))

    async def forget_erased(self) -> None:
        """Nothing to do at once: the erased text is gone from every live row, and PostgreSQL's
        autovacuum reclaims the old row versions. Its write-ahead log and base backups keep them for
        as long as the operator keeps those (see README, "PostgreSQL")."""

    # -- migrations ---------------------------------------------------------------------------

    async def schema_version(self) -> int:
        async with self._connection() as conn:
            return await self._version(conn)

    @staticmethod
    async def _version(conn: Conn) -> int:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL"
            "  DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
            ")"
        )
        return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))

    async def migrate(self, migrations: list[Migration] | None = None) -> list[int]:
        migrations = load_migrations(dialect="postgres") if migrations is None else migrations
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                return await self._migrate_locked(conn, migrations)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    async def _migrate_locked(self, conn: Conn, migrations: list[Migration]) -> list[int]:
        current = await self._version(conn)
        check_not_newer(current, migrations, self.describe())
        applied: list[int] = []
        for migration in migrations:
            if migration.version <= current:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                       migration.version, migration.name)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {migration.version:04d}_{migration.name} failed: {exc}") from exc
            log.info("migration applied", version=migration.version, name=migration.name)
            applied.append(migration.version)
        return applied
