"""Every SQL statement about per-server configuration, the model allowlist and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.states import SearchMode
from bot.store.database import Database, Row


@dataclass(frozen=True, slots=True)
class GuildSettings:
    guild_id: int
    default_model: str | None = None
    system_prompt: str | None = None
    provider_sort: str | None = None
    deny_data_collection: bool = False
    allow_fallbacks: bool = True
    guild_quota_nusd: int | None = None
    member_quota_nusd: int | None = None
    web_search: SearchMode = SearchMode.ON_REQUEST
    reasoning_effort: str | None = None
    reasoning_excluded: bool = False

    @classmethod
    def from_row(cls, row: Row) -> GuildSettings:
        return cls(row["guild_id"], row["default_model"], row["system_prompt"], row["provider_sort"],
                   bool(row["deny_data_collection"]), bool(row["allow_fallbacks"]), row["guild_quota_nusd"],
                   row["member_quota_nusd"], SearchMode(row["web_search"]), row["reasoning_effort"],
                   bool(row["reasoning_excluded"]))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    actor_id: int
    action: str
    old_value: str | None
    new_value: str | None
    created_at: str


class Setting(StrEnum):
    """A server's settings, named as the columns of `guild_settings` that hold them."""

    DEFAULT_MODEL = "default_model"
    SYSTEM_PROMPT = "system_prompt"
    PROVIDER_SORT = "provider_sort"
    DENY_DATA_COLLECTION = "deny_data_collection"
    ALLOW_FALLBACKS = "allow_fallbacks"
    GUILD_QUOTA = "guild_quota_nusd"
    MEMBER_QUOTA = "member_quota_nusd"
    WEB_SEARCH = "web_search"
    REASONING_EFFORT = "reasoning_effort"
    REASONING_EXCLUDED = "reasoning_excluded"


SETTING_COLUMNS = frozenset(s.value for s in Setting)


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """What moderators chose for one channel; None follows the server."""

    channel_id: int
    system_prompt: str | None = None
    default_model: str | None = None
    off: bool = False

    @classmethod
    def from_row(cls, row: Row) -> ChannelSettings:
        return cls(row["channel_id"], row["system_prompt"], row["default_model"], bool(row["off"]))

    @property
    def empty(self) -> bool:
        return self.system_prompt is None and self.default_model is None and not self.off


class ChannelSetting(StrEnum):
    """A channel's settings, named as the columns of `channel_settings` that hold them."""

    SYSTEM_PROMPT = "system_prompt"
    DEFAULT_MODEL = "default_model"
    OFF = "off"


CHANNEL_COLUMNS = frozenset(s.value for s in ChannelSetting)


class GuildRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def settings(self, guild_id: int) -> GuildSettings:
        row = await self.db.fetchone("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return GuildSettings.from_row(row) if row else GuildSettings(guild_id)

    async def patterns(self, guild_id: int) -> list[str]:
        rows = await self.db.fetchall("SELECT pattern FROM guild_models WHERE guild_id = ? ORDER BY pattern",
                                      (guild_id,))
        return [r["pattern"] for r in rows]

    async def channel(self, channel_id: int) -> ChannelSettings:
        row = await self.db.fetchone("SELECT channel_id, system_prompt, default_model, off FROM channel_settings "
                                     "WHERE channel_id = ?", (channel_id,))
        return ChannelSettings.from_row(row) if row else ChannelSettings(channel_id)

    async def channels(self, guild_id: int) -> list[ChannelSettings]:
        """The server's channels that have settings of their own."""
        rows = await self.db.fetchall("SELECT channel_id, system_prompt, default_model, off FROM channel_settings "
                                      "WHERE guild_id = ? ORDER BY channel_id", (guild_id,))
        return [c for c in (ChannelSettings.from_row(r) for r in rows) if not c.empty]

    async def audit(self, guild_id: int, limit: int = 15) -> list[AuditEntry]:
        rows = await self.db.fetchall(
            "SELECT id, actor_id, action, old_value, new_value, created_at FROM audit_log WHERE guild_id = ? "
            "ORDER BY id DESC LIMIT ?", (guild_id, limit))
        return [AuditEntry(*tuple(r)) for r in rows]

    # -- changes: each one in a transaction with its audit entry -------------------------------------

    async def set_setting(self, guild_id: int, column: Setting | str, value: object, *, actor_id: int, action: str,
                          old_text: str | None, new_text: str | None) -> None:
        if column not in SETTING_COLUMNS:
            raise ValueError(f"unknown setting {column!r}")
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT (guild_id) DO NOTHING",
                             (guild_id,))
            await tx.execute(
                f"UPDATE guild_settings SET {column} = ?, "  # column is from the fixed set above
                "updated_at = now_utc() WHERE guild_id = ?", (value, guild_id))
            await self._audit(tx, guild_id, actor_id, action, old_text, new_text)

    async def set_channel(self, guild_id: int, channel_id: int, column: ChannelSetting, value: object, *,
                          actor_id: int, old_text: str | None, new_text: str | None) -> None:
        if column not in CHANNEL_COLUMNS:
            raise ValueError(f"unknown channel setting {column!r}")
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO channel_settings (channel_id, guild_id) VALUES (?, ?) "
                             "ON CONFLICT (channel_id) DO NOTHING", (channel_id, guild_id))
            await tx.execute(f"UPDATE channel_settings SET {column} = ? "  # column is from the fixed set above
                             "WHERE channel_id = ? AND guild_id = ?", (value, channel_id, guild_id))
            await self._audit(tx, guild_id, actor_id, f"channel <#{channel_id}> {column.replace('_', ' ')}",
                              old_text, new_text)

    async def add_pattern(self, guild_id: int, pattern: str, *, actor_id: int, seed: list[str]) -> bool:
        """Add to the server's list; a server that had none starts from `seed` (the operator's list)."""
        async with self.db.transaction() as tx:
            existing = [r["pattern"] for r in await tx.fetchall(
                "SELECT pattern FROM guild_models WHERE guild_id = ?", (guild_id,))]
            if pattern in existing:
                return False
            to_add = ([p for p in seed if p != pattern] if not existing else []) + [pattern]
            for item in to_add:
                await tx.execute("INSERT INTO guild_models (guild_id, pattern, added_by) VALUES (?, ?, ?)",
                                 (guild_id, item, actor_id))
            await self._audit(tx, guild_id, actor_id, "model allow", None, pattern)
        return True

    async def remove_pattern(self, guild_id: int, pattern: str, *, actor_id: int, seed: list[str]) -> bool:
        async with self.db.transaction() as tx:
            existing = [r["pattern"] for r in await tx.fetchall(
                "SELECT pattern FROM guild_models WHERE guild_id = ?", (guild_id,))]
            current = existing or seed
            if pattern not in current:
                return False
            if not existing:  # materialise the operator's list, minus this one
                for item in seed:
                    if item != pattern:
                        await tx.execute("INSERT INTO guild_models (guild_id, pattern, added_by) VALUES (?, ?, ?)",
                                         (guild_id, item, actor_id))
            else:
                await tx.execute("DELETE FROM guild_models WHERE guild_id = ? AND pattern = ?", (guild_id, pattern))
            await self._audit(tx, guild_id, actor_id, "model remove", pattern, None)
        return True

    @staticmethod
    async def _audit(tx: Database, guild_id: int, actor_id: int, action: str, old: str | None,
                     new: str | None) -> None:
        await tx.execute(
            "INSERT INTO audit_log (guild_id, actor_id, action, old_value, new_value) VALUES (?, ?, ?, ?, ?)",
            (guild_id, actor_id, action, old, new))
