"""`/usage` for everyone, `/credits` for the bot's owners."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.permissions import is_moderator
from bot.discord.render import NO_MENTIONS
from bot.money import usd, usd_of
from bot.openrouter.errors import OpenRouterError
from bot.quotas import UsageReport
from bot.usage import UsageService

if TYPE_CHECKING:
    from bot.discord.bot import ChatBot

Interaction = discord.Interaction[Any]


def usage_embed(report: UsageReport, *, in_guild: bool) -> discord.Embed:
    embed = discord.Embed(title=f"Usage in {report.month}")
    embed.add_field(name="You", value=usd_of(report.member_spent, report.member_quota), inline=False)
    if in_guild:
        embed.add_field(name="This server", value=usd_of(report.guild_spent, report.guild_quota), inline=False)
    if report.top_members:
        embed.add_field(name="Top members", inline=False, value="\n".join(
            f"<@{uid}>: {usd(amount)}" for uid, amount in report.top_members))
    if report.top_models:
        embed.add_field(name="Top models", inline=False, value="\n".join(
            f"`{model}`: {usd(amount)} ({count} answers)" for model, amount, count in report.top_models))
    if report.over_holds:
        embed.add_field(name="Above their hold", inline=False, value=(
            f"{report.over_holds} answer(s) cost {usd(report.over_holds_by)} more than was held for them "
            "(a dearer provider, or a longer prompt than estimated). The extra still counts against the budget."))
    embed.set_footer(text=f"Limits reset on {report.resets} (UTC).")
    return embed


class UsageCog(commands.Cog):
    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot
        self.usage_service: UsageService = bot.core.usage

    @app_commands.command(name="usage", description="What you and this server spent this month")
    async def usage(self, interaction: Interaction) -> None:
        moderator = is_moderator(interaction.user, interaction.channel)
        report = await self.usage_service.report(interaction.guild_id, interaction.user.id, details=moderator)
        await interaction.response.send_message(embed=usage_embed(report, in_guild=interaction.guild_id is not None),
                                                ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="credits", description="The bot's OpenRouter credit (bot owners only)")
    async def credits(self, interaction: Interaction) -> None:
        if not await self.bot.is_owner(interaction.user):
            await interaction.response.send_message("Only the bot's owners can see its OpenRouter credit.",
                                                    ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True)
        try:
            key = await self.usage_service.credits()
        except OpenRouterError as exc:
            await interaction.followup.send(f"⚠️ {exc.user_message}", ephemeral=True)
            return
        embed = discord.Embed(title="OpenRouter key")
        embed.add_field(name="Label", value=key.label or "unlabelled")
        embed.add_field(name="Limit", value="none" if key.limit is None else usd(key.limit))
        embed.add_field(name="Used", value=usd(key.usage))
        remaining = "unlimited" if key.limit_remaining is None else usd(key.limit_remaining)
        embed.add_field(name="Remaining", value=remaining)
        if key.usage_monthly is not None:
            embed.add_field(name="Used this month", value=usd(key.usage_monthly))
        if key.limit_reset:
            embed.add_field(name="Limit resets", value=key.limit_reset)
        if key.is_free_tier:
            embed.set_footer(text="This key is on the free tier.")
        await interaction.followup.send(embed=embed, ephemeral=True)


async def setup(bot: ChatBot) -> None:
    await bot.add_cog(UsageCog(bot))
