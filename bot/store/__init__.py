"""The store: one database owner (SQLite or PostgreSQL), migrations, and every SQL statement the bot runs."""

from bot.store.database import Database, MigrationError

__all__ = ["Database", "MigrationError"]
