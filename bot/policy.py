"""Per-server policy: which models may be used, the server's defaults, and provider preferences.

Pure pattern matching at the top; `GuildPolicy` reads the server's configuration and turns it into
a `RequestPlan` (or a refusal) for each answer, and answers the model questions of the commands
(is this model usable here, which models match a search). DMs follow the operator's defaults.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import NamedTuple

from bot.openrouter.catalogue import ModelCatalogue
from bot.openrouter.errors import OpenRouterError
from bot.openrouter.types import ModelInfo, ProviderPreferences
from bot.store.guilds import ChannelSettings, GuildRepo, GuildSettings

AUTO_MODEL = "openrouter/auto"
PATTERN_SHAPE = re.compile(r"^[A-Za-z0-9*?._:/\-\[\]]+$")


def valid_pattern(pattern: str) -> bool:
    """A model id or a glob over ids: letters, digits, `/ . _ - :` and the wildcards `* ? [ ]`."""
    return bool(PATTERN_SHAPE.match(pattern)) and len(pattern) <= 200


def valid_model_id(text: str) -> bool:
    """A model id as OpenRouter writes them (`vendor/name`, maybe `:variant`), not a pattern."""
    return valid_pattern(text) and not is_pattern(text) and "/" in text


def not_a_model_id(text: str) -> Refusal | None:
    """Why typed text cannot be a model id (checked before anything shows it), or None."""
    if valid_model_id(text.strip()):
        return None
    return Refusal("That is not a model id: ids look like `openai/gpt-4o`. Browse them with `/models`.")


def is_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def model_allowed(model_id: str, patterns: Iterable[str]) -> bool:
    """Whether `model_id` matches one of the patterns (`anthropic/*`, `*:free`, or an exact id)."""
    return any(fnmatchcase(model_id, pattern) for pattern in patterns)


def allowed_among(models: Iterable[ModelInfo], patterns: Sequence[str]) -> list[ModelInfo]:
    return [m for m in models if model_allowed(m.id, patterns)]


@dataclass(frozen=True, slots=True)
class Refusal:
    message: str


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """Per-request choices made by policy: what may be asked, and how."""

    model: str
    max_tokens: int
    fallback_models: tuple[str, ...] = ()
    provider: ProviderPreferences | None = None
    system_prompt: str | None = None
    plugins: tuple[dict[str, object], ...] = ()


class Planned(NamedTuple):
    """A request plan and every model it may end up on (the first is the asked model, when known)."""

    plan: RequestPlan
    candidates: list[ModelInfo]


class GuildPolicy:
    def __init__(self, *, guilds: GuildRepo, catalogue: ModelCatalogue, operator_patterns: Sequence[str],
                 operator_default_model: str, fallback_models: Sequence[str], max_answer_tokens: int) -> None:
        self.guilds = guilds
        self.catalogue = catalogue
        self.operator_patterns = list(operator_patterns)
        self.operator_default_model = operator_default_model
        self.fallback_models = list(fallback_models)
        self.max_answer_tokens = max_answer_tokens

    async def settings(self, guild_id: int | None) -> GuildSettings:
        return await self.guilds.settings(guild_id) if guild_id else GuildSettings(0)

    async def patterns(self, guild_id: int | None) -> list[str]:
        own = await self.guilds.patterns(guild_id) if guild_id else []
        return own or self.operator_patterns

    async def has_own_list(self, guild_id: int) -> bool:
        return bool(await self.guilds.patterns(guild_id))

    async def channel(self, guild_id: int | None, channel_id: int | None) -> ChannelSettings:
        """A server channel's own settings (a thread passes its parent); none outside servers."""
        if not guild_id or channel_id is None:
            return ChannelSettings(channel_id or 0)
        return await self.guilds.channel(channel_id)

    async def switched_off(self, guild_id: int | None, channel_id: int | None) -> bool:
        """Whether moderators switched the bot off in this server channel."""
        return (await self.channel(guild_id, channel_id)).off

    async def default_model(self, guild_id: int | None, channel_id: int | None = None) -> str:
        """New conversations' model: the channel's, else the server's, else the operator's."""
        channel = await self.channel(guild_id, channel_id)
        settings = await self.settings(guild_id)
        return channel.default_model or settings.default_model or self.operator_default_model

    async def is_allowed(self, guild_id: int | None, model_id: str) -> bool:
        patterns = await self.patterns(guild_id)
        if model_id == AUTO_MODEL:
            return model_allowed(AUTO_MODEL, patterns) or bool(self.auto_candidates(patterns))
        return model_allowed(model_id, patterns)

    def auto_candidates(self, patterns: Sequence[str]) -> list[ModelInfo]:
        return [m for m in allowed_among(self.catalogue.all(), patterns) if m.id != AUTO_MODEL]

    async def allowed_models(self, guild_id: int | None) -> list[ModelInfo]:
        await self.catalogue.ensure_loaded()
        return allowed_among(self.catalogue.all(), await self.patterns(guild_id))

    async def refusal_for(self, guild_id: int | None, model_id: str) -> Refusal:
        patterns = await self.patterns(guild_id)
        shown = ", ".join(f"`{p}`" for p in patterns[:15])[:1200] + (" …" if len(patterns) > 15 else "")
        where = "on this server" if guild_id else "here"
        return Refusal(f"The model `{model_id}` is not allowed {where}. Allowed: {shown}. "
                       f"Pick one with `/model`.")

    # -- questions the commands ask -------------------------------------------------------------

    def ready(self) -> bool:
        """Whether model questions can be answered without waiting for OpenRouter."""
        return self.catalogue.loaded

    async def model_info(self, model_id: str) -> ModelInfo | None:
        await self.catalogue.ensure_loaded()
        return self.catalogue.get(model_id)

    async def check_model(self, guild_id: int | None, model_id: str) -> str | Refusal:
        """The model's id when OpenRouter offers it and this server allows it, else why not. A refusal
        names the id only once its shape is checked (no mentions, no markdown, at most 200 characters)."""
        model_id = model_id.strip()
        if (shape := not_a_model_id(model_id)) is not None:
            return shape
        try:
            info = None if model_id == AUTO_MODEL else await self.model_info(model_id)
        except OpenRouterError as exc:
            return Refusal(f"The models list is unavailable right now: {exc.user_message}")
        if model_id != AUTO_MODEL and info is None:
            allowed = await self.allowed_models(guild_id)  # only for the hint: the catalogue is loaded
            close = [m.id for m in self.catalogue.search(model_id, among=allowed, limit=5)]
            hint = f" Did you mean {', '.join(f'`{m}`' for m in close)}?" if close else " Browse them with `/models`."
            return Refusal(f"`{model_id}` is not a model OpenRouter offers.{hint}")
        if not await self.is_allowed(guild_id, model_id):
            return await self.refusal_for(guild_id, model_id)
        return info.id if info else model_id

    async def search_allowed(self, guild_id: int | None, query: str, *, limit: int) -> tuple[list[ModelInfo], int]:
        """Allowed models matching `query`, best first (at most `limit`), and how many match in all."""
        allowed = await self.allowed_models(guild_id)
        found = self.catalogue.search(query, among=allowed, limit=len(allowed))
        return found[:limit], len(found)

    async def search_catalogue(self, query: str, *, limit: int) -> list[ModelInfo]:
        """Every model OpenRouter offers that matches `query` (for moderators choosing what to allow)."""
        await self.catalogue.ensure_loaded()
        return self.catalogue.search(query, limit=limit)

    async def matching(self, pattern: str) -> list[str]:
        """Ids of the models OpenRouter offers that `pattern` matches."""
        await self.catalogue.ensure_loaded()
        return [m.id for m in self.catalogue.all() if model_allowed(m.id, [pattern])]

    async def vision_suggestions(self, guild_id: int | None, limit: int = 5) -> list[str]:
        """Allowed models that can see images, for a refusal's hint."""
        allowed = [m.id for m in await self.allowed_models(guild_id)]
        return [m.id for m in self.catalogue.vision_models(limit=limit, among=allowed)]

    # -- the plan of one answer ----------------------------------------------------------------

    async def plan(self, guild_id: int | None, model_id: str, channel_id: int | None = None) -> Planned | Refusal:
        """What to request for an answer by `model_id` here (in `channel_id`, a server channel whose
        persona applies), and every model it may end up on."""
        await self.catalogue.ensure_loaded()
        patterns = await self.patterns(guild_id)
        settings = await self.settings(guild_id)
        persona = (await self.channel(guild_id, channel_id)).system_prompt
        plugins: tuple[dict[str, object], ...] = ()
        if model_id == AUTO_MODEL:
            candidates = self.auto_candidates(patterns)
            if not candidates:
                return await self.refusal_for(guild_id, model_id)
            # the auto router may only pick among the allowed models
            plugins = ({"id": "auto-router", "allowed_models": list(patterns)},)
        else:
            if not model_allowed(model_id, patterns):
                return await self.refusal_for(guild_id, model_id)
            info = self.catalogue.get(model_id)
            if info is None:
                return Refusal(f"The model `{model_id}` is not available on OpenRouter. Pick another with `/model`.")
            candidates = [info]
        fallbacks = self._fallbacks(model_id, patterns) if settings.allow_fallbacks else ()
        candidates += [info for m in fallbacks if (info := self.catalogue.get(m)) is not None]
        provider = ProviderPreferences(
            sort=settings.provider_sort,  # type: ignore[arg-type]
            data_collection="deny" if settings.deny_data_collection else None,
            allow_fallbacks=None if settings.allow_fallbacks else False,
        )
        plan = RequestPlan(model=model_id, max_tokens=self.max_answer_tokens, fallback_models=fallbacks,
                           provider=provider, system_prompt=persona or settings.system_prompt, plugins=plugins)
        return Planned(plan, candidates)

    def _fallbacks(self, model_id: str, patterns: Sequence[str]) -> tuple[str, ...]:
        return tuple(m for m in self.fallback_models
                     if m != model_id and model_allowed(m, patterns) and self.catalogue.get(m) is not None)
