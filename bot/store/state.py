"""Key/value facts the bot keeps about itself."""

from __future__ import annotations

from bot.store.database import Database


class StateRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key: str) -> str | None:
        row = await self.db.fetchone("SELECT value FROM bot_state WHERE key = ?", (key,))
        return str(row["value"]) if row else None

    async def set(self, key: str, value: str) -> None:
        await self.db.execute(
            "INSERT INTO bot_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value))

    async def claim_until(self, key: str, now_ms: int, until_ms: int) -> int | None:
        """Take `key` until `until_ms` if it is free at `now_ms` (never taken, or its time has passed), in
        one statement, so that of several processes sharing the database exactly one gets it. Returns
        None when taken, else when the current holder's claim ends (epoch ms)."""
        taken = await self.db.execute(
            "INSERT INTO bot_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value "
            "WHERE CAST(bot_state.value AS BIGINT) <= ?", (key, str(until_ms), now_ms))
        if taken:
            return None
        held = await self.get(key)
        return int(held) if held is not None else now_ms
