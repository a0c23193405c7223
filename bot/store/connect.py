"""Which backend a database URL names (bot/settings.py checks the scheme): `sqlite:///relative/path`,
`sqlite:////absolute/path`, or `postgresql://user:password@host:port/dbname` (also `postgres://`; a
Unix socket as `?host=/folder`)."""

from __future__ import annotations

from bot.store.database import Database
from bot.store.postgres import PostgresDatabase
from bot.store.sqlite import SqliteDatabase

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def database_for(url: str) -> Database:
    """The (unopened) database a URL names."""
    if url.startswith(SQLITE_PREFIX) and len(url) > len(SQLITE_PREFIX):
        return SqliteDatabase(url[len(SQLITE_PREFIX):])
    if url.startswith(POSTGRES_PREFIXES):
        return PostgresDatabase(url)
    raise ValueError("a database URL starts with sqlite:///path or postgresql://")
