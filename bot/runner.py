"""Runs the bot: services, the Discord client, crash recovery, and a clean shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import discord

from bot.chat.service import ChatConfig, ChatService
from bot.chat.text import CURSOR
from bot.discord.bot import ChatBot
from bot.discord.render import NO_MENTIONS
from bot.logs import get_logger
from bot.moderation import GuildPolicy
from bot.quotas import QuotaService
from bot.services import Services
from bot.settings import Settings
from bot.store.conversations import ConversationRepo, Turn
from bot.store.guilds import GuildRepo
from bot.store.spend import SpendRepo

log = get_logger(__name__)
INTERRUPTED_NOTE = "-# ⚠️ interrupted: the bot stopped while this answer was streaming"


def build_chat(services: Services) -> ChatService:
    """The chat core with the server policy (allowlists) and the quotas plugged in."""
    settings = services.settings
    guilds = GuildRepo(services.db)
    policy = GuildPolicy(guilds=guilds, catalogue=services.catalogue,
                         operator_patterns=settings.allowed_models_default,
                         operator_default_model=settings.default_model, fallback_models=settings.fallback_models,
                         max_answer_tokens=settings.max_answer_tokens)
    quotas = QuotaService(spend=SpendRepo(services.db), guilds=guilds,
                          default_guild_quota=settings.default_guild_monthly_quota_usd,
                          default_member_quota=settings.default_member_monthly_quota_usd)
    return ChatService(
        repo=ConversationRepo(services.db),
        client=services.openrouter,
        catalogue=services.catalogue,
        config=ChatConfig(system_prompt=settings.system_prompt or None),
        policy=policy,
        budget=quotas,
    )


async def mark_interrupted_messages(bot: discord.Client, turns: list[Turn]) -> None:
    """Answers cut by a crash: drop the cursor and the Stop button, and say what happened."""
    for turn in turns:
        if not turn.discord_channel_id:
            continue
        channel = bot.get_partial_messageable(turn.discord_channel_id)
        for message_id in turn.discord_message_ids:
            try:
                message = await channel.fetch_message(message_id)
                text = message.content.replace(CURSOR, "").rstrip()
                if message_id == turn.discord_message_ids[-1]:
                    text = f"{text}\n\n{INTERRUPTED_NOTE}" if text else INTERRUPTED_NOTE
                await message.edit(content=text[:2000], view=None, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException as exc:
                log.info("could not mark an interrupted answer", turn=turn.id, message=message_id, error=str(exc))


async def run(settings: Settings, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None,
              client_options: dict[str, Any] | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set). Returns the exit status."""
    services = await Services.start(settings)
    chat = build_chat(services)
    bot = ChatBot(services, chat, **(client_options or {}))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    interrupted = await chat.recover_interrupted()
    await chat.settle_orphans()

    async def load_catalogue() -> None:
        try:
            await services.catalogue.ensure_loaded()
        except Exception as exc:  # the bot still starts; the catalogue loads on first use
            log.warning("could not load the models catalogue at start", error=repr(exc))

    async def after_login() -> None:
        await load_catalogue()
        await bot.wait_until_ready()
        await mark_interrupted_messages(bot, interrupted)
        if ready is not None:
            ready.set()

    runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()), name="discord")
    recovery = asyncio.create_task(after_login(), name="recovery")
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    status = 0
    try:
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done and runner.exception() is not None:
            exc = runner.exception()
            if isinstance(exc, discord.LoginFailure):
                log.error("Discord rejected the token: check DISCORD_TOKEN")
            else:
                log.error("the Discord client stopped", error=repr(exc), exc_info=exc)
            status = 1
        log.info("shutting down")
        await chat.shutdown(grace=3.0)
    finally:
        for task in (recovery, stopper):
            task.cancel()
        await bot.close()
        with contextlib.suppress(BaseException):
            await runner
        await services.close()
        for sig in handled:
            loop.remove_signal_handler(sig)
        log.info("stopped")
    return status
