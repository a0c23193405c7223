"""`/config` for moderators: allowed models, default model, quotas, system prompt, providers, channels, audit.

Who may use it is decided by Discord (see `bot/discord/permissions.py`); every change goes through
the core's `ServerConfig`, which records it in the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.chat.text import fit
from bot.discord.cogs.chat import EFFORTS, home_channel, model_choice
from bot.discord.render import NO_MENTIONS
from bot.money import usd
from bot.openrouter.errors import OpenRouterError
from bot.policy import is_pattern
from bot.server_config import Change, Changed, Overview, Quota, QuotaScope, ServerConfig
from bot.states import Effort, SearchMode
from bot.store.guilds import ChannelSettings

if TYPE_CHECKING:
    from bot.discord.bot import ChatBot

Interaction = discord.Interaction[Any]
ConfigurableChannel = discord.TextChannel | discord.ForumChannel
SEARCH_NAMES = {SearchMode.OFF: "off", SearchMode.ON_REQUEST: "on request", SearchMode.ALWAYS: "always"}
SEARCH_MODES = [app_commands.Choice(name=name, value=mode.value) for mode, name in SEARCH_NAMES.items()]
NO_CHANNEL = "Name a text or forum channel, or use this command in one."
SORTS = [app_commands.Choice(name=n, value=v) for n, v in
         (("price (cheapest provider first)", "price"), ("throughput (fastest tokens)", "throughput"),
          ("latency (quickest first token)", "latency"), ("OpenRouter's default", "default"))]


def quota_text(quota: Quota) -> str:
    amount = usd(quota.amount) if quota.amount is not None else "no limit"
    return f"{amount} (operator default)" if quota.operator_default else amount


def parse_usd(amount: float) -> Decimal | None:
    try:
        value = Decimal(str(amount)).quantize(Decimal("0.0001"))
    except InvalidOperation:
        return None
    return value if value >= 0 else None


def overview_embed(o: Overview) -> discord.Embed:
    embed = discord.Embed(title="Configuration for this server")
    embed.add_field(name="Default model", value=f"`{o.default_model}`", inline=False)
    embed.add_field(name="Allowed models" + ("" if o.own_list else " (operator default)"),
                    value=", ".join(f"`{p}`" for p in o.patterns)[:1024] or "none", inline=False)
    embed.add_field(name="Server quota", value=quota_text(o.guild_quota))
    embed.add_field(name="Member quota", value=quota_text(o.member_quota))
    embed.add_field(name=f"Spent in {o.month}", value=f"{usd(o.spent)} (resets {o.resets})")
    providers = [f"sort by {o.provider_sort}" if o.provider_sort else "OpenRouter's default order",
                 "providers that keep data denied" if o.deny_data_collection else "any data policy",
                 "fallbacks allowed" if o.allow_fallbacks else "fallbacks forbidden"]
    embed.add_field(name="Providers", value=", ".join(providers), inline=False)
    embed.add_field(name="Web search", value=SEARCH_NAMES[o.web_search])
    embed.add_field(name="Reasoning", value=(f"{o.reasoning_effort} effort" if o.reasoning_effort else
                                             "the model's own effort") + (", left out" if o.reasoning_excluded else ""))
    prompt = o.system_prompt
    embed.add_field(name="System prompt" + (" (operator default)" if o.system_prompt_is_default else ""),
                    value=(prompt[:1000] + ("…" if len(prompt) > 1000 else "")) or "none", inline=False)
    if o.channels:
        embed.add_field(name="Channels", value=channels_text(o.channels), inline=False)
    return embed


def default_refusal(changed: Changed, model_id: str | None) -> str | None:
    """Why a default model (the server's or a channel's) was not set, if it was not."""
    if changed.change is Change.UNKNOWN:
        return f"`{model_id}` is not a model OpenRouter offers."
    if changed.change is Change.NOT_ALLOWED:
        return f"`{model_id}` is not allowed on this server; allow it first with `/config model allow`."
    return None


def channels_text(channels: Sequence[ChannelSettings], limit: int = 1024) -> str:
    """One line per channel with settings of its own, cut to what an embed field holds."""
    lines = []
    for c in channels:
        parts = ["**off**"] if c.off else []
        if c.default_model:
            parts.append(f"model `{c.default_model}`")
        if c.system_prompt:
            persona = " ".join(c.system_prompt.split())
            parts.append(f"persona “{persona[:60]}{'…' if len(persona) > 60 else ''}”")
        lines.append(f"<#{c.channel_id}>: " + ", ".join(parts))
    text = ""
    for i, line in enumerate(lines):
        more = f"\n… and {len(lines) - i} more"
        if len(text) + len(line) + 1 + len(more) > limit:
            return text + more
        text += ("\n" if text else "") + line
    return text


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class ConfigCog(commands.GroupCog, group_name="config", group_description="Configure the bot for this server"):
    model = app_commands.Group(name="model", description="Which models this server may use")
    quota = app_commands.Group(name="quota", description="Monthly spending limits (USD, calendar month, UTC)")
    channel = app_commands.Group(name="channel", description="A persona, a default model or silence for one channel")

    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot
        self.config: ServerConfig = bot.core.server_config
        super().__init__()

    async def reply(self, interaction: Interaction, text: str) -> None:
        await interaction.response.send_message(fit(text), ephemeral=True, allowed_mentions=NO_MENTIONS)

    # -- models -----------------------------------------------------------------------------------

    @model.command(name="allow", description="Allow a model, or a pattern such as anthropic/* or *:free")
    @app_commands.describe(model="A model id or a pattern (* matches anything)")
    async def model_allow(self, interaction: Interaction, model: str) -> None:
        assert interaction.guild_id is not None
        pattern = model.strip()
        changed = await self.config.allow_model(interaction.guild_id, pattern, actor=interaction.user.id)
        if changed.change is Change.INVALID:
            await self.reply(interaction, f"`{pattern}` is not a model id or pattern (letters, digits, `/ . _ - :` "
                                          "and the wildcards `*` `?`).")
        elif changed.change is Change.UNKNOWN:
            await self.reply(interaction, f"No model OpenRouter offers matches `{pattern}`; nothing was changed.")
        elif changed.change is Change.UNCHANGED:
            await self.reply(interaction, f"`{pattern}` is already allowed.")
        else:
            what = f"{changed.matches} models" if is_pattern(pattern) else f"`{pattern}`"
            await self.reply(interaction, f"Allowed `{pattern}` ({what}).")

    @model.command(name="remove", description="Remove a model or pattern from this server's list")
    async def model_remove(self, interaction: Interaction, model: str) -> None:
        assert interaction.guild_id is not None
        changed = await self.config.remove_model(interaction.guild_id, model, actor=interaction.user.id)
        if changed.change is Change.UNCHANGED:
            await self.reply(interaction, f"`{model}` is not in this server's list (see `/config model list`).")
            return
        note = " The list is now empty, so the operator's default list applies again." if changed.now_empty else ""
        await self.reply(interaction, f"Removed `{model}`.{note}")

    @model.command(name="list", description="The models this server allows")
    async def model_list(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        patterns, own = await self.config.patterns(interaction.guild_id)
        matching = await self.config.models_matching(interaction.guild_id)
        source = "this server's list" if own else "the operator's default list (this server has none of its own)"
        await self.reply(interaction, f"Allowed by {source}:\n" + "\n".join(f"`{p}`" for p in patterns)
                         + f"\n-# {matching} models match right now.")

    @model.command(name="default", description="The model new conversations on this server use")
    async def model_default(self, interaction: Interaction, model: str) -> None:
        assert interaction.guild_id is not None
        model_id = model.strip()
        changed = await self.config.set_default_model(interaction.guild_id, model_id, actor=interaction.user.id)
        if (refused := default_refusal(changed, model_id)) is not None:
            await self.reply(interaction, refused)
        else:
            await self.reply(interaction, f"New conversations on this server now use `{model_id}` "
                                          f"(was `{changed.old}`).")

    @model_allow.autocomplete("model")
    @model_default.autocomplete("model")
    async def catalogue_autocomplete(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        try:
            found = await self.bot.core.models.search_catalogue(current, limit=25)
        except OpenRouterError:
            return []
        return [model_choice(m) for m in found]

    @model_remove.autocomplete("model")
    async def list_autocomplete(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        assert interaction.guild_id is not None
        patterns, _ = await self.config.patterns(interaction.guild_id)
        return [app_commands.Choice(name=p, value=p) for p in patterns if current.lower() in p.lower()][:25]

    # -- quotas -----------------------------------------------------------------------------------

    async def set_quota(self, interaction: Interaction, scope: QuotaScope, amount: float) -> None:
        assert interaction.guild_id is not None
        value = parse_usd(amount)
        if value is None:
            await self.reply(interaction, "The amount must be a number of dollars, 0 or more.")
            return
        await self.config.set_quota(interaction.guild_id, scope, value, actor=interaction.user.id)
        zero = " Nobody can spend anything now (free models still work)." if value == 0 else ""
        await self.reply(interaction, f"The monthly {scope} limit is now {usd(value)}.{zero}")

    @quota.command(name="server", description="How much the whole server may spend per month")
    @app_commands.describe(usd="US dollars per calendar month; 0 means no spending")
    async def quota_server(self, interaction: Interaction, usd: app_commands.Range[float, 0, 1_000_000]) -> None:
        await self.set_quota(interaction, QuotaScope.SERVER, usd)

    @quota.command(name="member", description="How much each member may spend per month")
    @app_commands.describe(usd="US dollars per calendar month; 0 means no spending")
    async def quota_member(self, interaction: Interaction, usd: app_commands.Range[float, 0, 1_000_000]) -> None:
        await self.set_quota(interaction, QuotaScope.MEMBER, usd)

    # -- system prompt and providers ----------------------------------------------------------------

    @app_commands.command(name="system-prompt", description="The instructions every conversation here starts with")
    @app_commands.describe(prompt="Leave empty to go back to the operator's default")
    async def system_prompt(self, interaction: Interaction,
                            prompt: app_commands.Range[str, 1, 4000] | None = None) -> None:
        assert interaction.guild_id is not None
        await self.config.set_system_prompt(interaction.guild_id, prompt, actor=interaction.user.id)
        await self.reply(interaction, "System prompt updated." if prompt else
                         "System prompt reset to the operator's default.")

    @app_commands.command(name="providers", description="How OpenRouter picks providers for this server")
    @app_commands.describe(sort="Prefer providers by price, throughput or latency",
                           deny_data_collection="Only use providers that do not keep or train on prompts",
                           allow_fallbacks="Let OpenRouter fall back to other providers and models")
    @app_commands.choices(sort=SORTS)
    async def providers(self, interaction: Interaction, sort: app_commands.Choice[str] | None = None,
                        deny_data_collection: bool | None = None, allow_fallbacks: bool | None = None) -> None:
        assert interaction.guild_id is not None
        await self.config.set_providers(interaction.guild_id, actor=interaction.user.id,
                                        sort=sort.value if sort else None, deny_data_collection=deny_data_collection,
                                        allow_fallbacks=allow_fallbacks)
        changed = []
        if sort is not None:
            changed.append(f"sort: {sort.value}")
        if deny_data_collection is not None:
            changed.append(f"deny data collection: {deny_data_collection}")
        if allow_fallbacks is not None:
            changed.append(f"fallbacks: {'allowed' if allow_fallbacks else 'forbidden'}")
        await self.reply(interaction, ("Updated " + ", ".join(changed) + ".") if changed else
                         "Nothing to change: pick at least one option.")

    # -- one channel --------------------------------------------------------------------------------

    @staticmethod
    def target(interaction: Interaction, channel: ConfigurableChannel | None) -> int | None:
        """The channel a `/config channel` command is about: the one named, else the one it is used in
        (a thread's parent: threads follow their channel)."""
        if channel is not None:
            return channel.id
        here = interaction.channel
        return home_channel(here) if isinstance(here, discord.Thread | ConfigurableChannel) else None

    @channel.command(name="persona", description="The instructions conversations in one channel start with")
    @app_commands.describe(prompt="Leave empty to use the server's system prompt again",
                           channel="The channel (default: this one; threads follow their channel)")
    async def channel_persona(self, interaction: Interaction, prompt: app_commands.Range[str, 1, 4000] | None = None,
                              channel: ConfigurableChannel | None = None) -> None:
        assert interaction.guild_id is not None
        if (channel_id := self.target(interaction, channel)) is None:
            await self.reply(interaction, NO_CHANNEL)
            return
        await self.config.set_channel_persona(interaction.guild_id, channel_id, prompt, actor=interaction.user.id)
        await self.reply(interaction, f"Conversations in <#{channel_id}> now start with " +
                         ("this persona." if prompt else "the server's system prompt."))

    @channel.command(name="model", description="The model new conversations in one channel use")
    @app_commands.describe(model="Leave empty to use the server's default model again",
                           channel="The channel (default: this one; threads follow their channel)")
    async def channel_model(self, interaction: Interaction, model: str | None = None,
                            channel: ConfigurableChannel | None = None) -> None:
        assert interaction.guild_id is not None
        if (channel_id := self.target(interaction, channel)) is None:
            await self.reply(interaction, NO_CHANNEL)
            return
        changed = await self.config.set_channel_model(interaction.guild_id, channel_id, model,
                                                      actor=interaction.user.id)
        if (refused := default_refusal(changed, model)) is not None:
            await self.reply(interaction, refused)
        else:
            now = f"`{model.strip()}`" if model else "the server's default model"
            await self.reply(interaction, f"New conversations in <#{channel_id}> now use {now}.")

    @channel.command(name="off", description="Switch the bot off (or back on) in one channel and its threads")
    @app_commands.describe(off="True: the bot stays silent there; False: it answers again",
                           channel="The channel (default: this one)")
    async def channel_off(self, interaction: Interaction, off: bool,
                          channel: ConfigurableChannel | None = None) -> None:
        assert interaction.guild_id is not None
        if (channel_id := self.target(interaction, channel)) is None:
            await self.reply(interaction, NO_CHANNEL)
            return
        changed = await self.config.set_channel_off(interaction.guild_id, channel_id, off, actor=interaction.user.id)
        state = "off" if off else "on"
        if changed.change is Change.UNCHANGED:
            await self.reply(interaction, f"The bot is already {state} in <#{channel_id}>.")
            return
        await self.reply(interaction, f"The bot is now {state} in <#{channel_id}> and its threads." +
                         (" Mentions and `/chat` there get a short note instead of an answer." if off else ""))

    @channel_model.autocomplete("model")
    async def channel_model_autocomplete(self, interaction: Interaction,
                                         current: str) -> list[app_commands.Choice[str]]:
        assert interaction.guild_id is not None
        try:
            found, _ = await self.bot.core.models.search_allowed(interaction.guild_id, current, limit=25)
        except OpenRouterError:
            return []
        return [model_choice(m) for m in found]

    # -- web search and reasoning ---------------------------------------------------------------------

    @app_commands.command(name="search", description="When answers on this server may search the web")
    @app_commands.describe(mode="off: never; on request: /chat search:True; always: every answer")
    @app_commands.choices(mode=SEARCH_MODES)
    async def search(self, interaction: Interaction, mode: app_commands.Choice[str]) -> None:
        assert interaction.guild_id is not None
        changed = await self.config.set_web_search(interaction.guild_id, SearchMode(mode.value),
                                                   actor=interaction.user.id)
        if changed.change is Change.UNCHANGED:
            await self.reply(interaction, f"Web search is already {mode.name}.")
            return
        cost = "" if mode.value == SearchMode.OFF else (
            " Each search costs up to about $0.02 more and is counted in the quotas.")
        await self.reply(interaction, f"Web search is now {mode.name}.{cost}")

    @app_commands.command(name="reasoning", description="How reasoning models think on this server")
    @app_commands.describe(effort="The effort asked of models that take one",
                           hide="True: they still reason, but their reasoning is left out of answers")
    @app_commands.choices(effort=[*EFFORTS, app_commands.Choice(name="the model's own default", value="default")])
    async def reasoning(self, interaction: Interaction, effort: app_commands.Choice[str] | None = None,
                        hide: bool | None = None) -> None:
        assert interaction.guild_id is not None
        if effort is None and hide is None:
            await self.reply(interaction, "Nothing to change: pick at least one option.")
            return
        await self.config.set_reasoning(interaction.guild_id, actor=interaction.user.id,
                                        effort=None if effort is None else
                                        "default" if effort.value == "default" else Effort(effort.value),
                                        excluded=hide)
        changed = [f"effort: {effort.name}"] if effort else []
        if hide is not None:
            changed.append("reasoning left out of answers" if hide else "reasoning kept")
        await self.reply(interaction, "Updated " + ", ".join(changed) + ".")

    # -- overview -----------------------------------------------------------------------------------

    @app_commands.command(name="show", description="This server's whole configuration at a glance")
    async def show(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        overview = await self.config.overview(interaction.guild_id)
        await interaction.response.send_message(embed=overview_embed(overview), ephemeral=True)

    @app_commands.command(name="audit", description="The latest configuration changes")
    async def audit(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        entries = await self.config.audit(interaction.guild_id, limit=15)
        if not entries:
            await self.reply(interaction, "No configuration changes yet.")
            return
        lines = []
        for e in entries:
            change = f"`{e.old_value}` → `{e.new_value}`" if e.old_value and e.new_value else \
                f"`{e.new_value or e.old_value}`"
            lines.append(f"`{e.created_at[:16].replace('T', ' ')}` <@{e.actor_id}> **{e.action}**: {change}")
        await self.reply(interaction, "\n".join(lines))

    async def cog_app_command_error(self, interaction: Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.NoPrivateMessage):
            await self.reply(interaction, "`/config` works inside a server.")
            return
        raise error



async def setup(bot: ChatBot) -> None:
    await bot.add_cog(ConfigCog(bot))
