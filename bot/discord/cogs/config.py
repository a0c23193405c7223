"""`/config` for moderators: allowed models, default model, quotas, system prompt, providers, audit.

The whole group needs Manage Server by default; server admins can change who may use it in
Discord's integration settings (Server Settings → Integrations).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.chat.service import AUTO_MODEL
from bot.discord.cogs.chat import model_choice
from bot.discord.render import NO_MENTIONS
from bot.moderation import is_pattern, model_allowed, valid_pattern
from bot.money import from_nusd, to_nusd, usd
from bot.openrouter.errors import OpenRouterError

if TYPE_CHECKING:
    from bot.discord.bot import ChatBot

Interaction = discord.Interaction[Any]
SORTS = [app_commands.Choice(name=n, value=v) for n, v in
         (("price (cheapest provider first)", "price"), ("throughput (fastest tokens)", "throughput"),
          ("latency (quickest first token)", "latency"), ("OpenRouter's default", "default"))]


def quota_text(nusd: int | None, default: Decimal | None) -> str:
    if nusd is None:
        return f"{usd(default)} (operator default)" if default is not None else "no limit (operator default)"
    return usd(from_nusd(nusd))


def parse_usd(amount: float) -> Decimal | None:
    try:
        value = Decimal(str(amount)).quantize(Decimal("0.0001"))
    except InvalidOperation:
        return None
    return value if value >= 0 else None


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class ConfigCog(commands.GroupCog, group_name="config", group_description="Configure the bot for this server"):
    model = app_commands.Group(name="model", description="Which models this server may use")
    quota = app_commands.Group(name="quota", description="Monthly spending limits (USD, calendar month, UTC)")

    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot
        self.policy = bot.policy
        self.guilds = bot.policy.guilds
        super().__init__()

    async def reply(self, interaction: Interaction, text: str) -> None:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    # -- models -----------------------------------------------------------------------------------

    @model.command(name="allow", description="Allow a model, or a pattern such as anthropic/* or *:free")
    @app_commands.describe(model="A model id or a pattern (* matches anything)")
    async def model_allow(self, interaction: Interaction, model: str) -> None:
        assert interaction.guild_id is not None
        pattern = model.strip()
        if not valid_pattern(pattern):
            await self.reply(interaction, f"`{pattern}` is not a model id or pattern (letters, digits, `/ . _ - :` "
                                          "and the wildcards `*` `?`).")
            return
        await self.bot.chat.catalogue.ensure_loaded()
        matches = [m.id for m in self.bot.chat.catalogue.all() if model_allowed(m.id, [pattern])]
        if not matches and pattern != AUTO_MODEL:
            await self.reply(interaction, f"No model OpenRouter offers matches `{pattern}`; nothing was changed.")
            return
        added = await self.guilds.add_pattern(interaction.guild_id, pattern, actor_id=interaction.user.id,
                                              seed=self.policy.operator_patterns)
        if not added:
            await self.reply(interaction, f"`{pattern}` is already allowed.")
            return
        what = f"{len(matches)} models" if is_pattern(pattern) else f"`{pattern}`"
        await self.reply(interaction, f"Allowed `{pattern}` ({what}).")

    @model.command(name="remove", description="Remove a model or pattern from this server's list")
    async def model_remove(self, interaction: Interaction, model: str) -> None:
        assert interaction.guild_id is not None
        removed = await self.guilds.remove_pattern(interaction.guild_id, model.strip(), actor_id=interaction.user.id,
                                                   seed=self.policy.operator_patterns)
        if not removed:
            await self.reply(interaction, f"`{model}` is not in this server's list (see `/config model list`).")
            return
        left = await self.guilds.patterns(interaction.guild_id)
        note = "" if left else " The list is now empty, so the operator's default list applies again."
        await self.reply(interaction, f"Removed `{model}`.{note}")

    @model.command(name="list", description="The models this server allows")
    async def model_list(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        patterns = await self.policy.patterns(interaction.guild_id)
        own = await self.policy.has_own_list(interaction.guild_id)
        try:
            allowed = await self.policy.allowed_models(interaction.guild_id)
        except OpenRouterError:
            allowed = []
        lines = [f"`{p}`" for p in patterns]
        source = "this server's list" if own else "the operator's default list (this server has none of its own)"
        await self.reply(interaction, f"Allowed by {source}:\n" + "\n".join(lines)
                         + f"\n-# {len(allowed)} models match right now.")

    @model.command(name="default", description="The model new conversations on this server use")
    async def model_default(self, interaction: Interaction, model: str) -> None:
        assert interaction.guild_id is not None
        model_id = model.strip()
        if model_id != AUTO_MODEL and await self.bot.chat.model_info(model_id) is None:
            await self.reply(interaction, f"`{model_id}` is not a model OpenRouter offers.")
            return
        if not await self.policy.is_allowed(interaction.guild_id, model_id):
            await self.reply(interaction, f"`{model_id}` is not allowed on this server; allow it first with "
                                          "`/config model allow`.")
            return
        old = await self.policy.default_model(interaction.guild_id)
        await self.guilds.set_setting(interaction.guild_id, "default_model", model_id, actor_id=interaction.user.id,
                                      action="default model", old_text=old, new_text=model_id)
        await self.reply(interaction, f"New conversations on this server now use `{model_id}` (was `{old}`).")

    @model_allow.autocomplete("model")
    @model_default.autocomplete("model")
    async def catalogue_autocomplete(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        try:
            await self.bot.chat.catalogue.ensure_loaded()
        except OpenRouterError:
            return []
        found = self.bot.chat.catalogue.search(current, limit=25)
        return [model_choice(m) for m in found]

    @model_remove.autocomplete("model")
    async def list_autocomplete(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        patterns = await self.policy.patterns(interaction.guild_id)
        return [app_commands.Choice(name=p, value=p) for p in patterns if current.lower() in p.lower()][:25]

    # -- quotas -----------------------------------------------------------------------------------

    async def set_quota(self, interaction: Interaction, column: str, label: str, amount: float) -> None:
        assert interaction.guild_id is not None
        value = parse_usd(amount)
        if value is None:
            await self.reply(interaction, "The amount must be a number of dollars, 0 or more.")
            return
        settings = await self.guilds.settings(interaction.guild_id)
        old_nusd = getattr(settings, column)
        await self.guilds.set_setting(interaction.guild_id, column, to_nusd(value), actor_id=interaction.user.id,
                                      action=f"quota {label}", old_text=None if old_nusd is None else usd(
                                          from_nusd(old_nusd)), new_text=usd(value))
        zero = " Nobody can spend anything now (free models still work)." if value == 0 else ""
        await self.reply(interaction, f"The monthly {label} limit is now {usd(value)}.{zero}")

    @quota.command(name="server", description="How much the whole server may spend per month")
    @app_commands.describe(usd="US dollars per calendar month; 0 means no spending")
    async def quota_server(self, interaction: Interaction, usd: app_commands.Range[float, 0, 1_000_000]) -> None:
        await self.set_quota(interaction, "guild_quota_nusd", "server", usd)

    @quota.command(name="member", description="How much each member may spend per month")
    @app_commands.describe(usd="US dollars per calendar month; 0 means no spending")
    async def quota_member(self, interaction: Interaction, usd: app_commands.Range[float, 0, 1_000_000]) -> None:
        await self.set_quota(interaction, "member_quota_nusd", "member", usd)

    # -- system prompt and providers ----------------------------------------------------------------

    @app_commands.command(name="system-prompt", description="The instructions every conversation here starts with")
    @app_commands.describe(prompt="Leave empty to go back to the operator's default")
    async def system_prompt(self, interaction: Interaction,
                            prompt: app_commands.Range[str, 1, 4000] | None = None) -> None:
        assert interaction.guild_id is not None
        settings = await self.guilds.settings(interaction.guild_id)
        await self.guilds.set_setting(interaction.guild_id, "system_prompt", prompt, actor_id=interaction.user.id,
                                      action="system prompt", old_text=settings.system_prompt, new_text=prompt)
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
        gid, actor = interaction.guild_id, interaction.user.id
        settings = await self.guilds.settings(gid)
        changed = []
        if sort is not None:
            value = None if sort.value == "default" else sort.value
            await self.guilds.set_setting(gid, "provider_sort", value, actor_id=actor, action="provider sort",
                                          old_text=settings.provider_sort, new_text=value)
            changed.append(f"sort: {sort.value}")
        if deny_data_collection is not None:
            await self.guilds.set_setting(gid, "deny_data_collection", int(deny_data_collection), actor_id=actor,
                                          action="deny data collection", old_text=str(settings.deny_data_collection),
                                          new_text=str(deny_data_collection))
            changed.append(f"deny data collection: {deny_data_collection}")
        if allow_fallbacks is not None:
            await self.guilds.set_setting(gid, "allow_fallbacks", int(allow_fallbacks), actor_id=actor,
                                          action="allow fallbacks", old_text=str(settings.allow_fallbacks),
                                          new_text=str(allow_fallbacks))
            changed.append(f"fallbacks: {'allowed' if allow_fallbacks else 'forbidden'}")
        await self.reply(interaction, ("Updated " + ", ".join(changed) + ".") if changed else
                         "Nothing to change: pick at least one option.")

    # -- overview -----------------------------------------------------------------------------------

    @app_commands.command(name="show", description="This server's whole configuration at a glance")
    async def show(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        gid = interaction.guild_id
        s = await self.guilds.settings(gid)
        quotas = self.bot.quotas
        report = await quotas.usage(gid, interaction.user.id, details=False)
        patterns = await self.policy.patterns(gid)
        own = await self.policy.has_own_list(gid)
        embed = discord.Embed(title="Configuration for this server")
        embed.add_field(name="Default model", value=f"`{await self.policy.default_model(gid)}`", inline=False)
        embed.add_field(name="Allowed models" + ("" if own else " (operator default)"),
                        value=", ".join(f"`{p}`" for p in patterns)[:1024] or "none", inline=False)
        embed.add_field(name="Server quota", value=quota_text(s.guild_quota_nusd, quotas.default_guild_quota))
        embed.add_field(name="Member quota", value=quota_text(s.member_quota_nusd, quotas.default_member_quota))
        embed.add_field(name=f"Spent in {report.month}", value=f"{usd(report.guild_spent)} (resets {report.resets})")
        providers = [f"sort by {s.provider_sort}" if s.provider_sort else "OpenRouter's default order",
                     "providers that keep data denied" if s.deny_data_collection else "any data policy",
                     "fallbacks allowed" if s.allow_fallbacks else "fallbacks forbidden"]
        embed.add_field(name="Providers", value=", ".join(providers), inline=False)
        prompt = s.system_prompt or self.bot.settings.system_prompt
        embed.add_field(name="System prompt" + ("" if s.system_prompt else " (operator default)"),
                        value=(prompt[:1000] + ("…" if len(prompt) > 1000 else "")) or "none", inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="audit", description="The latest configuration changes")
    async def audit(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        entries = await self.guilds.audit(interaction.guild_id, limit=15)
        if not entries:
            await self.reply(interaction, "No configuration changes yet.")
            return
        lines = []
        for e in entries:
            change = f"`{e.old_value}` → `{e.new_value}`" if e.old_value and e.new_value else \
                f"`{e.new_value or e.old_value}`"
            lines.append(f"`{e.created_at[:16].replace('T', ' ')}` <@{e.actor_id}> **{e.action}**: {change}")
        await self.reply(interaction, "\n".join(lines)[:2000])

    async def cog_app_command_error(self, interaction: Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.NoPrivateMessage):
            await self.reply(interaction, "`/config` works inside a server.")
            return
        raise error



async def setup(bot: ChatBot) -> None:
    await bot.add_cog(ConfigCog(bot))
