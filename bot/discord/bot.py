"""The discord.py client: loads the feature extensions, syncs slash commands, owns the pacer."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.chat.record import stored_outcome
from bot.chat.text import CURSOR, fit
from bot.core import Core
from bot.discord.identify import IdentifyGate
from bot.discord.limits import DiscordLimits
from bot.discord.pacing import ChannelPacer
from bot.discord.render import DiscordAnswerView
from bot.logs import get_logger
from bot.settings import Settings
from bot.store.conversations import Turn

log = get_logger(__name__)

INTERRUPTED_NOTE = "-# ⚠️ interrupted: the bot stopped while this answer was streaming"
NO_MENTIONS = discord.AllowedMentions.none()
EXTENSIONS = ("bot.discord.cogs.chat", "bot.discord.cogs.again", "bot.discord.cogs.config", "bot.discord.cogs.usage")


def chat_intents() -> discord.Intents:
    """Only what the bot reads: guilds (channels, threads), messages in guilds and DMs, and their text.
    No members or presences: at scale those are most of a client's memory, and nothing here reads them."""
    return discord.Intents(guilds=True, guild_messages=True, dm_messages=True, message_content=True)


def client_options(settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
    """The discord.py options: sharding from the settings, and no cache the bot never reads."""
    # No message cache: the bot reads its conversations from the database, and Discord echoes every edit
    # of a streaming answer back, which a cache would parse into Message objects each time.
    options.setdefault("max_messages", None)
    options.setdefault("member_cache_flags", discord.MemberCacheFlags.none())
    options.setdefault("chunk_guilds_at_startup", False)
    if settings.shard_count is not None:
        options.setdefault("shard_count", settings.shard_count)
    if settings.shard_ids is not None:
        options.setdefault("shard_ids", list(settings.shard_ids))
    return options


def skip_own_message_updates(parsers: dict[str, Callable[[Any], None]], self_id: Callable[[], int | None]) -> None:
    """Discord echoes every edit the bot makes as a MESSAGE_UPDATE (a streaming answer: one a second);
    discord.py builds a `Message` from each and dispatches `raw_message_edit`. Nothing here reads the
    bot's own edits (no message cache; the edit-to-rerun listener skips bots; the views the bot tracks
    only ever carry the components the bot itself sent), so those are dropped before any parsing.
    Edits by anyone else, and updates that name no author, go through as before."""
    parse = parsers["MESSAGE_UPDATE"]

    def parse_message_update(data: Any) -> None:
        author = data.get("author")
        if author is not None and author.get("id") == str(self_id()):
            return
        parse(data)

    parsers["MESSAGE_UPDATE"] = parse_message_update


class ChatBot(commands.AutoShardedBot):
    def __init__(self, settings: Settings, core: Core, *, pacer: ChannelPacer | None = None,
                 extensions: tuple[str, ...] = EXTENSIONS, **options: Any) -> None:
        # A text-only bot: no warnings at every start about voice libraries it does not need.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        pacer = pacer or ChannelPacer(global_per_second=settings.process_writes_per_second)
        self.limits = DiscordLimits(pacer)  # what Discord's responses say feeds the pacer back
        core.metrics.watch_discord(self.limits)
        options.setdefault("http_trace", self.limits.trace_config())
        super().__init__(command_prefix=commands.when_mentioned, intents=chat_intents(), help_command=None,
                         allowed_mentions=NO_MENTIONS, **client_options(settings, options))
        skip_own_message_updates(self._connection.parsers, lambda: self._connection.self_id)
        self.identify_gate = IdentifyGate(core.claim_identify, self._max_concurrency)
        self._ask_gateway_once()
        self.settings = settings
        self.core = core
        if settings.owner_ids:
            self.owner_ids = set(settings.owner_ids)
        self.pacer = pacer
        self._extensions = extensions
        self.tree.error(self.on_app_command_error)

    async def setup_hook(self) -> None:
        for extension in self._extensions:
            await self.load_extension(extension)
        await self.sync_commands_if_changed()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Every shard waits its turn under Discord's IDENTIFY limit, shared with the bot's other processes."""
        await self.identify_gate.wait_turn(shard_id or 0)

    async def _max_concurrency(self) -> int:
        return int((await self.http.get_bot_gateway())[2]["max_concurrency"])

    def _ask_gateway_once(self) -> None:
        """GET /gateway/bot answers once per process: discord.py asks it for the shard count (SHARD_COUNT
        unset) and the identify gate for max_concurrency, and start-up requests come out of the global budget."""
        ask = self.http.get_bot_gateway
        answer: list[Any] = []

        async def once() -> Any:
            if not answer:
                answer.append(await ask())
            return answer[0]

        self.http.get_bot_gateway = once  # type: ignore[method-assign]

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: chat messages are handled by the chat extension's listener."""

    async def sync_commands_if_changed(self) -> bool:
        """Register the slash commands with Discord, skipping the call when nothing changed."""
        payload = sorted((c.to_dict(self.tree) for c in self.tree.get_commands()), key=lambda c: c["name"])
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        if await self.core.command_sync_digest(self.application_id) == digest:
            log.info("slash commands unchanged; not syncing")
            return False
        await self.tree.sync()
        await self.core.remember_command_sync(self.application_id, digest)
        log.info("slash commands synced", commands=[c["name"] for c in payload])
        return True

    async def mark_interrupted(self, turns: list[Turn]) -> None:
        """Answers cut by a crash: drop the cursor and the Stop button, and say what happened."""
        self._written_before_start(turns)
        for turn in turns:
            if not turn.discord_channel_id:
                continue
            channel = self.get_partial_messageable(turn.discord_channel_id)
            for message_id in turn.discord_message_ids:
                try:
                    message = await channel.fetch_message(message_id)
                    await self.pacer.acquire(turn.discord_channel_id)
                    text = message.content.replace(CURSOR, "").rstrip()
                    if message_id == turn.discord_message_ids[-1]:
                        text = f"{text}\n\n{INTERRUPTED_NOTE}" if text else INTERRUPTED_NOTE
                    await message.edit(content=fit(text), view=None, allowed_mentions=NO_MENTIONS)
                except discord.HTTPException as exc:
                    log.info("could not mark an interrupted answer", turn=turn.id, message=message_id, error=str(exc))

    async def show_again(self, turns: list[Turn]) -> None:
        """Finished answers whose final form never reached Discord (it was failing): show it now."""
        self._written_before_start(turns)
        for turn in turns:
            if turn.discord_channel_id and await self._show_again(turn, turn.discord_channel_id):
                log.info("showed an answer whose final form had not reached Discord", turn=turn.id)

    def _written_before_start(self, turns: list[Turn]) -> None:
        """The previous process may have written to these answers' channels moments ago: their buckets
        count as spent until a window has passed."""
        for channel_id in {t.discord_channel_id for t in turns if t.discord_channel_id}:
            self.pacer.assume_full(channel_id)

    async def _show_again(self, turn: Turn, channel_id: int) -> bool:
        channel = self.get_partial_messageable(channel_id)
        messages = []
        for message_id in turn.discord_message_ids:
            with contextlib.suppress(discord.NotFound):
                messages.append(await channel.fetch_message(message_id))
        if not messages:
            return False

        async def already_open(_text: str, _view: discord.ui.View | None) -> discord.Message:
            return messages[0]

        async def send_more(text: str, view: discord.ui.View | None = None) -> discord.Message:
            return await channel.send(text, view=view, allowed_mentions=NO_MENTIONS)  # type: ignore[arg-type]

        view = DiscordAnswerView(open_first=already_open, send_more=send_more, channel_id=channel_id, pacer=self.pacer,
                                 show_reasoning=self.settings.show_reasoning,
                                 final_retry_budget=self.settings.final_edit_retry_seconds)
        view.adopt(messages)
        if not await view.finish(stored_outcome(turn)):
            return False
        await self.core.conversations.answer_shown(turn.id, view.message_ids())
        return True

    async def on_app_command_error(self, interaction: discord.Interaction[Any],
                                   error: app_commands.AppCommandError) -> None:
        """No interaction goes unanswered, whatever failed."""
        if isinstance(error, app_commands.CheckFailure):
            text = str(error) or "You are not allowed to use this command here."
        else:
            original = getattr(error, "original", error)
            log.error("command failed", command=interaction.command.name if interaction.command else None,
                      error=repr(original), exc_info=original)
            text = "Something went wrong while running this command. It has been logged."
        await respond_ephemeral(interaction, text)


async def respond_ephemeral(interaction: discord.Interaction[Any], text: str) -> None:
    try:
        if interaction.response.is_done():
            await interaction.followup.send(fit(text), ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(fit(text), ephemeral=True,
                                                    allowed_mentions=NO_MENTIONS)
    except discord.HTTPException as exc:
        log.warning("could not answer an interaction", error=str(exc))
