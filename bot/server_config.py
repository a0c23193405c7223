"""A server's configuration as moderators change it: allowed models, default model, quotas, system
prompt, provider routing. Every change is one transaction with its audit entry (see `store/guilds`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from bot.money import from_nusd, to_nusd, usd
from bot.openrouter.errors import OpenRouterError
from bot.policy import AUTO_MODEL, GuildPolicy, valid_pattern
from bot.quotas import QuotaService
from bot.states import Effort, SearchMode
from bot.store.guilds import AuditEntry, ChannelSetting, ChannelSettings, GuildRepo, Setting


class QuotaScope(StrEnum):
    SERVER = "server"
    MEMBER = "member"


class Change(StrEnum):
    """What a change request did."""

    DONE = "done"
    INVALID = "invalid"  # not a model id or pattern
    UNKNOWN = "unknown"  # no model OpenRouter offers matches
    UNCHANGED = "unchanged"  # already so
    NOT_ALLOWED = "not allowed"  # the default must be an allowed model


@dataclass(frozen=True, slots=True)
class Changed:
    change: Change
    matches: int = 0  # models an allowed pattern matches
    old: str | None = None  # the value before
    now_empty: bool = False  # the server's own list is empty again (the operator's applies)


@dataclass(frozen=True, slots=True)
class Quota:
    amount: Decimal | None  # None: no limit
    operator_default: bool


@dataclass(frozen=True, slots=True)
class Overview:
    default_model: str
    patterns: list[str]
    own_list: bool
    models_matching: int
    guild_quota: Quota
    member_quota: Quota
    month: str
    spent: Decimal
    resets: str
    provider_sort: str | None
    deny_data_collection: bool
    allow_fallbacks: bool
    system_prompt: str
    system_prompt_is_default: bool
    channels: list[ChannelSettings]
    web_search: SearchMode
    reasoning_effort: str | None
    reasoning_excluded: bool


class ServerConfig:
    def __init__(self, *, guilds: GuildRepo, policy: GuildPolicy, quotas: QuotaService,
                 operator_system_prompt: str) -> None:
        self.guilds = guilds
        self.policy = policy
        self.quotas = quotas
        self.operator_system_prompt = operator_system_prompt

    # -- models -------------------------------------------------------------------------------

    async def allow_model(self, guild_id: int, pattern: str, *, actor: int) -> Changed:
        pattern = pattern.strip()
        if not valid_pattern(pattern):
            return Changed(Change.INVALID)
        matches = await self.policy.matching(pattern)
        if not matches and pattern != AUTO_MODEL:
            return Changed(Change.UNKNOWN)
        added = await self.guilds.add_pattern(guild_id, pattern, actor_id=actor, seed=self.policy.operator_patterns)
        return Changed(Change.DONE if added else Change.UNCHANGED, matches=len(matches))

    async def remove_model(self, guild_id: int, pattern: str, *, actor: int) -> Changed:
        removed = await self.guilds.remove_pattern(guild_id, pattern.strip(), actor_id=actor,
                                                   seed=self.policy.operator_patterns)
        if not removed:
            return Changed(Change.UNCHANGED)
        return Changed(Change.DONE, now_empty=not await self.guilds.patterns(guild_id))

    async def patterns(self, guild_id: int) -> tuple[list[str], bool]:
        """The patterns in force, and whether they are the server's own (else the operator's)."""
        return await self.policy.patterns(guild_id), await self.policy.has_own_list(guild_id)

    async def models_matching(self, guild_id: int) -> int:
        try:
            return len(await self.policy.allowed_models(guild_id))
        except OpenRouterError:
            return 0

    async def set_default_model(self, guild_id: int, model_id: str, *, actor: int) -> Changed:
        model_id = model_id.strip()
        if model_id != AUTO_MODEL and await self.policy.model_info(model_id) is None:
            return Changed(Change.UNKNOWN)
        if not await self.policy.is_allowed(guild_id, model_id):
            return Changed(Change.NOT_ALLOWED)
        old = await self.policy.default_model(guild_id)
        await self.guilds.set_setting(guild_id, Setting.DEFAULT_MODEL, model_id, actor_id=actor,
                                      action="default model", old_text=old, new_text=model_id)
        return Changed(Change.DONE, old=old)

    # -- money, prompt, providers -----------------------------------------------------------------

    async def set_quota(self, guild_id: int, scope: QuotaScope, amount: Decimal, *, actor: int) -> None:
        if amount < 0:
            raise ValueError("a quota is 0 or more")
        setting = Setting.GUILD_QUOTA if scope is QuotaScope.SERVER else Setting.MEMBER_QUOTA
        settings = await self.guilds.settings(guild_id)
        old = settings.guild_quota_nusd if scope is QuotaScope.SERVER else settings.member_quota_nusd
        await self.guilds.set_setting(guild_id, setting, to_nusd(amount), actor_id=actor, action=f"quota {scope}",
                                      old_text=None if old is None else usd(from_nusd(old)), new_text=usd(amount))

    async def set_system_prompt(self, guild_id: int, prompt: str | None, *, actor: int) -> None:
        settings = await self.guilds.settings(guild_id)
        await self.guilds.set_setting(guild_id, Setting.SYSTEM_PROMPT, prompt, actor_id=actor, action="system prompt",
                                      old_text=settings.system_prompt, new_text=prompt)

    async def set_providers(self, guild_id: int, *, actor: int, sort: str | None = None,
                            deny_data_collection: bool | None = None, allow_fallbacks: bool | None = None) -> None:
        """Change what is given; `sort="default"` goes back to OpenRouter's own order."""
        old = await self.guilds.settings(guild_id)
        if sort is not None:
            value = None if sort == "default" else sort
            await self.guilds.set_setting(guild_id, Setting.PROVIDER_SORT, value, actor_id=actor,
                                          action="provider sort", old_text=old.provider_sort, new_text=value)
        if deny_data_collection is not None:
            await self.guilds.set_setting(guild_id, Setting.DENY_DATA_COLLECTION, int(deny_data_collection),
                                          actor_id=actor, action="deny data collection",
                                          old_text=str(old.deny_data_collection), new_text=str(deny_data_collection))
        if allow_fallbacks is not None:
            await self.guilds.set_setting(guild_id, Setting.ALLOW_FALLBACKS, int(allow_fallbacks), actor_id=actor,
                                          action="allow fallbacks", old_text=str(old.allow_fallbacks),
                                          new_text=str(allow_fallbacks))

    async def set_web_search(self, guild_id: int, mode: SearchMode, *, actor: int) -> Changed:
        old = (await self.guilds.settings(guild_id)).web_search
        if old is mode:
            return Changed(Change.UNCHANGED)
        await self.guilds.set_setting(guild_id, Setting.WEB_SEARCH, mode.value, actor_id=actor, action="web search",
                                      old_text=old.value, new_text=mode.value)
        return Changed(Change.DONE, old=old.value)

    async def set_reasoning(self, guild_id: int, *, actor: int, effort: Effort | Literal["default"] | None = None,
                            excluded: bool | None = None) -> None:
        """Change what is given: the effort asked of reasoning models (`"default"`: the model's own) and
        whether their reasoning is left out."""
        old = await self.guilds.settings(guild_id)
        if effort is not None:
            value = None if effort == "default" else str(effort)
            await self.guilds.set_setting(guild_id, Setting.REASONING_EFFORT, value, actor_id=actor,
                                          action="reasoning effort", old_text=old.reasoning_effort, new_text=value)
        if excluded is not None:
            await self.guilds.set_setting(guild_id, Setting.REASONING_EXCLUDED, int(excluded), actor_id=actor,
                                          action="reasoning left out", old_text=str(old.reasoning_excluded),
                                          new_text=str(excluded))

    # -- one channel ------------------------------------------------------------------------------

    async def set_channel_persona(self, guild_id: int, channel_id: int, prompt: str | None, *, actor: int) -> None:
        """The system prompt of conversations started in this channel (None: the server's)."""
        old = await self.guilds.channel(channel_id)
        await self.guilds.set_channel(guild_id, channel_id, ChannelSetting.SYSTEM_PROMPT, prompt, actor_id=actor,
                                      old_text=old.system_prompt, new_text=prompt)

    async def set_channel_model(self, guild_id: int, channel_id: int, model_id: str | None, *, actor: int) -> Changed:
        """The default model of new conversations in this channel (None: the server's); it must be allowed."""
        model_id = model_id.strip() if model_id else None
        if model_id is not None:
            if model_id != AUTO_MODEL and await self.policy.model_info(model_id) is None:
                return Changed(Change.UNKNOWN)
            if not await self.policy.is_allowed(guild_id, model_id):
                return Changed(Change.NOT_ALLOWED)
        old = (await self.guilds.channel(channel_id)).default_model
        await self.guilds.set_channel(guild_id, channel_id, ChannelSetting.DEFAULT_MODEL, model_id, actor_id=actor,
                                      old_text=old, new_text=model_id)
        return Changed(Change.DONE, old=old)

    async def set_channel_off(self, guild_id: int, channel_id: int, off: bool, *, actor: int) -> Changed:
        """Switch the bot off (or back on) in this channel and its threads."""
        old = (await self.guilds.channel(channel_id)).off
        if old == off:
            return Changed(Change.UNCHANGED)
        await self.guilds.set_channel(guild_id, channel_id, ChannelSetting.OFF, int(off), actor_id=actor,
                                      old_text="off" if old else "on", new_text="off" if off else "on")
        return Changed(Change.DONE)

    # -- reading --------------------------------------------------------------------------------

    async def overview(self, guild_id: int) -> Overview:
        s = await self.guilds.settings(guild_id)
        report = await self.quotas.usage(guild_id, 0, details=False)  # the server's month and its limits
        patterns, own = await self.patterns(guild_id)
        return Overview(
            default_model=s.default_model or self.policy.operator_default_model, patterns=patterns, own_list=own,
            models_matching=await self.models_matching(guild_id),
            guild_quota=Quota(report.guild_quota, s.guild_quota_nusd is None),
            member_quota=Quota(report.member_quota, s.member_quota_nusd is None),
            month=report.month, spent=report.guild_spent, resets=report.resets, provider_sort=s.provider_sort,
            deny_data_collection=s.deny_data_collection, allow_fallbacks=s.allow_fallbacks,
            system_prompt=s.system_prompt or self.operator_system_prompt,
            system_prompt_is_default=not s.system_prompt, channels=await self.guilds.channels(guild_id),
            web_search=s.web_search, reasoning_effort=s.reasoning_effort, reasoning_excluded=s.reasoning_excluded)

    async def audit(self, guild_id: int, limit: int = 15) -> list[AuditEntry]:
        return await self.guilds.audit(guild_id, limit=limit)

