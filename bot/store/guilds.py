"""Every SQL statement about per-server configuration, the model allowlist and the audit log."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from bot.states import SearchMode
from bot.store.database import Database, Row

V = TypeVar("V")


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
    """A server's configuration, read through a short cache.

    Every question reads its server's settings, allowlist and channel settings several times (is the
    channel switched off, which model, which persona, which quota), and a server changes them rarely:
    each is read from the database at most once every `FRESH_SECONDS` per process. A change made through
    this object applies at once. A change made by another process shows within `FRESH_SECONDS`; with
    shards, a server's commands and questions all reach the one process that holds its shard.
    """

    FRESH_SECONDS = 5.0
    KEEP_AT_MOST = 4096  # cached entries before the stale ones are dropped

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self._clock = clock
        self._cache: dict[tuple[str, int], tuple[float, object]] = {}
        self._changes = 0  # changes made through this object: a read that overlapped one is not kept

    async def settings(self, guild_id: int) -> GuildSettings:
        cached = self._cached("settings", guild_id)
        if isinstance(cached, GuildSettings):
            return cached
        changes = self._changes
        row = await self.db.fetchone("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
        settings = GuildSettings.from_row(row) if row else GuildSettings(guild_id)
        return self._keep("settings", guild_id, settings, changes)

    async def patterns(self, guild_id: int) -> list[str]:
        cached = self._cached("patterns", guild_id)
        if isinstance(cached, tuple):
            return list(cached)
        changes = self._changes
        rows = await self.db.fetchall("SELECT pattern FROM guild_models WHERE guild_id = ? ORDER BY pattern",
                                      (guild_id,))
        return list(self._keep("patterns", guild_id, tuple(r["pattern"] for r in rows), changes))

    async def channel(self, channel_id: int) -> ChannelSettings:
        cached = self._cached("channel", channel_id)
        if isinstance(cached, ChannelSettings):
            return cached
        changes = self._changes
        row = await self.db.fetchone("SELECT channel_id, system_prompt, default_model, off FROM channel_settings "
                                     "WHERE channel_id = ?", (channel_id,))
        settings = ChannelSettings.from_row(row) if row else ChannelSettings(channel_id)
        return self._keep("channel", channel_id, settings, changes)

    def _cached(self, kind: str, key: int) -> object | None:
        entry = self._cache.get((kind, key))
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def _keep(self, kind: str, key: int, value: V, changes: int) -> V:
        """Cache what was read, unless a change made here since the read began may have come too late for it."""
        if changes != self._changes:
            return value
        now = self._clock()
        if len(self._cache) >= self.KEEP_AT_MOST:
            for stale in [k for k, (until, _) in self._cache.items() if until <= now] or list(self._cache):
                del self._cache[stale]
        self._cache[(kind, key)] = (now + self.FRESH_SECONDS, value)
        return value

    def _forget(self, kind: str, key: int) -> None:
        """This process changed it: the next read goes to the database."""
        self._changes += 1
        self._cache.pop((kind, key), None)

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
        self._forget("settings", guild_id)

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
        self._forget("channel", channel_id)

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
        self._forget("patterns", guild_id)
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
        self._forget("patterns", guild_id)
        return True

    @staticmethod
    async def _audit(tx: Database, guild_id: int, actor_id: int, action: str, old: str | None,
                     new: str | None) -> None:
        await tx.execute(
            "INSERT INTO audit_log (guild_id, actor_id, action, old_value, new_value) VALUES (?, ?, ?, ?, ?)",
            (guild_id, actor_id, action, old, new))
