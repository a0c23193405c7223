"""A test-only extension: records every `raw_message_edit` the bot's discord.py client dispatches."""

from __future__ import annotations

import discord
from discord.ext import commands

SEEN: list[discord.RawMessageUpdateEvent] = []  # a fresh list each time discord.py loads this


async def setup(bot: commands.Bot) -> None:
    async def on_raw_message_edit(payload: discord.RawMessageUpdateEvent) -> None:
        SEEN.append(payload)

    bot.add_listener(on_raw_message_edit)
