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

from bot.costs import WEB_MAX_USES, WEB_RESULTS
from bot.openrouter.catalogue import ModelCatalogue
from bot.openrouter.errors import OpenRouterError
from bot.openrouter.types import ModelInfo, ProviderPreferences
from bot.states import Effort, SearchMode
from bot.store.guilds import ChannelSettings, GuildRepo, GuildSettings

AUTO_MODEL = "openrouter/auto"
# OpenRouter's routing variants: web search, the fastest provider, the cheapest one. Allowed wherever the
# model itself is; `:online` becomes the `web` plugin, so the results a search brings are bounded.
ROUTING_SUFFIXES = (":online", ":nitro", ":floor")
ONLINE = ":online"
WEB_PLUGIN: dict[str, object] = {"id": "web", "max_results": WEB_RESULTS, "max_uses": WEB_MAX_USES}
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


def split_variant(model_id: str) -> tuple[str, str]:
    """`vendor/model:online` → (`vendor/model`, `:online`); an id without a routing suffix → (id, "")."""
    for suffix in ROUTING_SUFFIXES:
        if model_id.endswith(suffix) and len(model_id) > len(suffix):
            return model_id[: -len(suffix)], suffix
    return model_id, ""


def variant_allowed(model_id: str, patterns: Iterable[str]) -> bool:
    """Allowed as written, or a routing variant of an allowed model."""
    patterns = list(patterns)
    base, suffix = split_variant(model_id)
    return model_allowed(model_id, patterns) or (bool(suffix) and model_allowed(base, patterns))


def search_choice(mode: SearchMode, asked: bool | None, online: bool) -> bool | Refusal:
    """Whether an answer searches the web: when the question asks (or its model is an `:online` one),
    else when the server says always; refused where the server turned search off."""
    wanted = online or (asked if asked is not None else mode is SearchMode.ALWAYS)
    if wanted and mode is SearchMode.OFF:
        return Refusal("Web search is turned off on this server, so this cannot be answered with it.")
    return wanted


def reasoning_choice(settings: GuildSettings, asked: Effort | None,
                     model: ModelInfo | None) -> dict[str, object] | Refusal | None:
    """The `reasoning` of a request: the effort asked, else the server's default, and whether reasoning
    is left out; only for models that take it (the auto router gets what was asked)."""
    if model is not None and not model.reasons:
        if asked is not None:
            return Refusal(f"`{model.id}` does not take a reasoning effort. Ask without one, or pick a "
                           f"reasoning model with `/models`.")
        return None
    reasoning: dict[str, object] = {}
    if effort := asked or settings.reasoning_effort:
        reasoning["effort"] = str(effort)
    if settings.reasoning_excluded:
        reasoning["exclude"] = True
    return reasoning or None


@dataclass(frozen=True, slots=True)
class AskOptions:
    """What one question asks beyond its text: web search, a reasoning effort (None: the server's), and
    whose budget pays when not the asker's (someone else had it answered again)."""

    search: bool | None = None
    effort: Effort | None = None
    billed_to: int | None = None


PLAIN_QUESTION = AskOptions()  # nothing asked beyond the text: the server's settings apply


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
    reasoning: dict[str, object] | None = None
    web_search: bool = False  # the `web` plugin is among the plugins: its fees and results are held


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
        return variant_allowed(model_id, patterns)

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
        base, suffix = split_variant(model_id)
        try:
            info = None if model_id == AUTO_MODEL else await self.model_info(base)
        except OpenRouterError as exc:
            return Refusal(f"The models list is unavailable right now: {exc.user_message}")
        if model_id != AUTO_MODEL and info is None:
            allowed = await self.allowed_models(guild_id)  # only for the hint: the catalogue is loaded
            close = [m.id for m in self.catalogue.search(model_id, among=allowed, limit=5)]
            hint = f" Did you mean {', '.join(f'`{m}`' for m in close)}?" if close else " Browse them with `/models`."
            return Refusal(f"`{model_id}` is not a model OpenRouter offers.{hint}")
        if not await self.is_allowed(guild_id, model_id):
            return await self.refusal_for(guild_id, model_id)
        return info.id + suffix if info else model_id

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

    async def plan(self, guild_id: int | None, model_id: str, channel_id: int | None = None,
                   options: AskOptions = PLAIN_QUESTION) -> Planned | Refusal:
        """What to request for an answer by `model_id` here (in `channel_id`, a server channel whose
        persona applies), as `options` ask, and every model it may end up on."""
        await self.catalogue.ensure_loaded()
        patterns = await self.patterns(guild_id)
        settings = await self.settings(guild_id)
        base, suffix = split_variant(model_id)
        routed = self._routed(model_id, base, patterns)
        if routed is None:
            return await self.refusal_for(guild_id, model_id)
        if isinstance(routed, Refusal):
            return routed
        candidates, plugins = routed
        search = search_choice(settings.web_search, options.search, suffix == ONLINE)
        reasoning = reasoning_choice(settings, options.effort, None if model_id == AUTO_MODEL else candidates[0])
        if isinstance(search, Refusal) or isinstance(reasoning, Refusal):
            return search if isinstance(search, Refusal) else reasoning  # type: ignore[return-value]
        fallbacks = self._fallbacks(base, patterns) if settings.allow_fallbacks else ()
        candidates += [info for m in fallbacks if (info := self.catalogue.get(m)) is not None]
        provider = ProviderPreferences(
            sort=settings.provider_sort,  # type: ignore[arg-type]
            data_collection="deny" if settings.deny_data_collection else None,
            allow_fallbacks=None if settings.allow_fallbacks else False,
        )
        persona = (await self.channel(guild_id, channel_id)).system_prompt
        plan = RequestPlan(model=base if suffix == ONLINE else model_id, max_tokens=self.max_answer_tokens,
                           fallback_models=fallbacks, provider=provider,
                           system_prompt=persona or settings.system_prompt,
                           plugins=plugins + ((WEB_PLUGIN,) if search else ()), reasoning=reasoning,
                           web_search=search)
        return Planned(plan, candidates)

    def _routed(self, model_id: str, base: str, patterns: Sequence[str]
                ) -> tuple[list[ModelInfo], tuple[dict[str, object], ...]] | Refusal | None:
        """The models an answer by `model_id` may come from, and the auto router's plugin when it picks;
        None when the server does not allow it."""
        if model_id == AUTO_MODEL:
            candidates = self.auto_candidates(patterns)
            if not candidates:
                return None
            # the auto router may only pick among the allowed models
            return candidates, ({"id": "auto-router", "allowed_models": list(patterns)},)
        if not variant_allowed(model_id, patterns):
            return None
        info = self.catalogue.get(base)
        if info is None:
            return Refusal(f"The model `{model_id}` is not available on OpenRouter. Pick another with `/model`.")
        return [info], ()

    def _fallbacks(self, model_id: str, patterns: Sequence[str]) -> tuple[str, ...]:
        return tuple(m for m in self.fallback_models
                     if m != model_id and model_allowed(m, patterns) and self.catalogue.get(m) is not None)
