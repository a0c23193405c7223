"""The SQLite store: one connection owner, migrations, and every SQL statement the bot runs."""

from bot.store.database import Database, MigrationError

__all__ = ["Database", "MigrationError"]
