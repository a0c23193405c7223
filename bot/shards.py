"""Which guilds this process serves when the bot runs as several processes, each with a slice of the shards.

Discord sends a guild's events to shard `(guild_id >> 22) % shard_count` and direct messages to shard 0.
A process that runs some shards owns exactly those guilds (and the DMs when it runs shard 0): only it
may recover their answers after a crash or settle their open holds, since another process may be
streaming its own answers right now.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bot.settings import Settings

DM_SHARD = 0
T = TypeVar("T")


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """The shard of a guild; direct messages (no guild, or 0 as the spend tables write it) are shard 0's."""
    return DM_SHARD if not guild_id else (guild_id >> 22) % shard_count


@dataclass(frozen=True, slots=True)
class ShardScope:
    """This process's guilds: every guild (`shard_ids` None: one process runs all shards) or its shards'."""

    shard_ids: frozenset[int] | None = None
    shard_count: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> ShardScope:
        if settings.shard_ids is None or settings.shard_count is None:
            return cls()
        return cls(frozenset(settings.shard_ids), settings.shard_count)

    @property
    def everything(self) -> bool:
        return self.shard_ids is None

    def owns(self, guild_id: int | None) -> bool:
        return self.shard_ids is None or shard_of(guild_id, self.shard_count) in self.shard_ids

    @property
    def answers_dms(self) -> bool:
        return self.owns(None)


ALL_SHARDS = ShardScope()  # one process runs every shard


async def owned(scope: ShardScope, items: Sequence[T], guild_of: Callable[[T], Awaitable[int | None]]) -> list[T]:
    """The items whose guild (looked up with `guild_of`) this process owns; all of them when it owns every guild."""
    if scope.everything:
        return list(items)
    return [item for item in items if scope.owns(await guild_of(item))]
