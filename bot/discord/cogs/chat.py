"""Chat in Discord: `/chat`, conversation threads, mentions, DMs, `/model`, `/models`, the Stop button."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import discord
import structlog
from discord import app_commands
from discord.ext import commands

from bot.chat.attachments import Rejected
from bot.chat.conversations import ConversationService
from bot.chat.text import fit, thread_title
from bot.chat.view import AnswerOutcome
from bot.discord.bot import respond_ephemeral
from bot.discord.chat_response import ChatResponse
from bot.discord.files import read_attachments
from bot.discord.permissions import may_act_for
from bot.discord.render import NO_MENTIONS, DiscordAnswerView, FinalView, OpenFirst
from bot.logs import get_logger
from bot.money import per_million
from bot.openrouter.errors import OpenRouterError
from bot.openrouter.types import ModelInfo
from bot.policy import AUTO_MODEL, PLAIN_QUESTION, AskOptions, GuildPolicy, Refusal, not_a_model_id
from bot.states import ChannelKind, Effort
from bot.store.conversations import Conversation, StoredAttachment

if TYPE_CHECKING:
    from bot.discord.bot import ChatBot

log = get_logger(__name__)
Interaction = discord.Interaction[Any]
STOP_ID = "answer:stop"
EFFORTS = [app_commands.Choice(name=f"{e.value} effort", value=e.value) for e in Effort]
SWITCHED_OFF = "The moderators have switched the bot off in this channel."
NOTE_SECONDS = 20.0  # how long a note in place of an answer stays


def model_choice(model: ModelInfo) -> app_commands.Choice[str]:
    """An autocomplete entry for a model (Discord allows 100 characters)."""
    return app_commands.Choice(name=f"{model.name} ({model.id})"[:100], value=model.id)


def model_line(model: ModelInfo) -> str:
    eye = "".join((" · 👁️ images" if model.vision else "", " · 🧠 reasoning" if model.reasons else "",
                   " · 🔎 searches natively" if model.web_search_price else ""))
    context = f"{model.context_length // 1000:,}k ctx" if model.context_length else "ctx ?"
    price = (f"in {per_million(model.prompt_price)} / out {per_million(model.completion_price)} per 1M tokens"
             if model.priced else "variable price")  # unknown is never shown as "free"
    return f"**{model.name}**\n`{model.id}` · {price} · {context}{eye}"


def channel_kind(channel: Any) -> ChannelKind:
    if isinstance(channel, discord.Thread):
        return ChannelKind.THREAD
    if isinstance(channel, discord.DMChannel):
        return ChannelKind.DM
    return ChannelKind.CHANNEL


def home_channel(channel: Any) -> int | None:
    """The server channel whose settings apply here: a thread's parent, else the channel; None in DMs."""
    if isinstance(channel, discord.Thread):
        return channel.parent_id
    return None if isinstance(channel, discord.DMChannel) or channel is None else int(channel.id)


def replying_to(message: discord.Message | discord.PartialMessage) -> OpenFirst:
    """An answer's first message as a reply to `message` (pinging nobody)."""
    async def open_first(text: str, stop: discord.ui.View | None) -> discord.Message:
        if stop is None:  # typed: `view` may only be left out
            return await message.reply(text, mention_author=False, allowed_mentions=NO_MENTIONS)
        return await message.reply(text, view=stop, mention_author=False, allowed_mentions=NO_MENTIONS)

    return open_first


def bind_log_context(*, guild: int | None, channel: int | None, user: int) -> None:
    """Every log line of this request (this task) carries where it came from and who asked."""
    structlog.contextvars.bind_contextvars(guild=guild, channel=channel, user=user)


class StopView(discord.ui.View):
    """The Stop button under a streaming answer: for the person who asked, or a moderator."""

    def __init__(self, cog: ChatCog) -> None:
        super().__init__(timeout=None)
        self.cog = cog

    @discord.ui.button(label="Stop", style=discord.ButtonStyle.secondary, emoji="⏹️", custom_id=STOP_ID)
    async def stop_answer(self, interaction: Interaction, button: discord.ui.Button[StopView]) -> None:
        await self.cog.handle_stop(interaction)


class ChatCog(commands.Cog):
    DEFER_AFTER = 1.5  # a /chat response still unsent this long after the command is deferred (Discord: 3 s)
    CHAT_WORDS_WAIT = 1.0  # ... and its first message waits this long for the first words, then shows "Thinking"

    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot
        self.conversations: ConversationService = bot.core.conversations
        self.models: GuildPolicy = bot.core.models
        self.settings = bot.settings

    async def cog_load(self) -> None:
        self.bot.add_view(StopView(self))  # stale Stop buttons after a restart still get an answer

    # -- helpers ----------------------------------------------------------------------------------

    async def model_choices(self, current: str, guild_id: int | None) -> list[app_commands.Choice[str]]:
        """Autocomplete: only the models this server allows."""
        try:
            found, _ = await self.models.search_allowed(guild_id, current, limit=25)
        except OpenRouterError:
            return []
        choices = [model_choice(m) for m in found]
        if (AUTO_MODEL.startswith(current.lower()) and len(choices) < 25
                and await self.models.is_allowed(guild_id, AUTO_MODEL)):
            choices.insert(0, app_commands.Choice(name="Auto: let OpenRouter pick (openrouter/auto)", value=AUTO_MODEL))
        return choices[:25]

    def make_view(self, *, channel: discord.abc.Messageable, channel_id: int, open_first: OpenFirst,
                  rejected: Sequence[Rejected], asked_in: int, guild_id: int | None,
                  interaction: Interaction | None = None) -> DiscordAnswerView:
        """The view of one answer; `asked_in` is the question's Discord id (the interaction or the message).
        A finished answer gets the buttons to answer again (the `again` extension's)."""
        async def send_more(text: str, view: discord.ui.View | None = None) -> discord.Message:
            return await channel.send(text, view=view, allowed_mentions=NO_MENTIONS)  # type: ignore[arg-type]

        # a /chat response waits a moment for the first words (see ChatResponse), a reply as configured
        words_wait = max(self.settings.first_words_wait_seconds, self.CHAT_WORDS_WAIT if interaction else 0.0)
        return DiscordAnswerView(
            open_first=open_first, send_more=send_more, channel_id=channel_id, pacer=self.bot.pacer,
            interval=self.settings.stream_edit_interval_seconds, show_reasoning=self.settings.show_reasoning,
            first_words_wait=words_wait,
            stop_view=StopView(self), notices=[r.message() for r in rejected],
            final_retry_budget=self.settings.final_edit_retry_seconds,
            first_via_channel=(channel, self.token_deadline()) if interaction else None,
            metrics=self.bot.core.metrics, asked_at=discord.utils.snowflake_time(asked_in).timestamp(),
            final_view=self.final_view(guild_id),
            http=self.bot.http, interaction=interaction,
        )

    def final_view(self, guild_id: int | None) -> FinalView | None:
        again = self.bot.get_cog("AgainCog")
        final_view: Callable[..., Awaitable[discord.ui.View | None]] | None = getattr(again, "final_view", None)
        return None if final_view is None else functools.partial(final_view, guild_id=guild_id)

    def token_deadline(self) -> float:
        """When to stop editing an interaction's response with its token (a margin before it expires)."""
        lifetime = self.settings.interaction_token_seconds
        return asyncio.get_running_loop().time() + lifetime - min(60.0, lifetime / 5)

    async def run_answer(self, conversation: Conversation, *, author: discord.abc.User, content: str,
                         message_id: int | None, channel_id: int, attachments: Sequence[StoredAttachment],
                         view: DiscordAnswerView, model: str | None = None,
                         options: AskOptions = PLAIN_QUESTION) -> AnswerOutcome:
        try:
            return await self.conversations.ask(conversation, author_id=author.id, author_name=author.display_name,
                                                content=content, message_id=message_id, channel_id=channel_id,
                                                attachments=attachments, view=view, model=model, options=options)
        finally:
            if view.stop_view is not None:
                view.stop_view.stop()

    # -- /chat ------------------------------------------------------------------------------------

    @app_commands.command(name="chat", description="Ask a model. The conversation goes on in a thread.")
    @app_commands.describe(prompt="What to ask", model="Which model answers (default: the server's)",
                           image="An image for the model to look at",
                           search="Search the web and cite sources (costs a little more)",
                           reasoning="How hard a reasoning model thinks before it answers")
    @app_commands.choices(reasoning=EFFORTS)
    async def chat_command(self, interaction: Interaction, prompt: app_commands.Range[str, 1, 6000],
                           model: str | None = None, image: discord.Attachment | None = None,
                           search: bool | None = None, reasoning: app_commands.Choice[str] | None = None) -> None:
        bind_log_context(guild=interaction.guild_id, channel=interaction.channel_id, user=interaction.user.id)
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable) or interaction.channel_id is None:
            await respond_ephemeral(interaction, "I cannot chat here.")
            return
        # inside a conversation thread /chat goes on with it; elsewhere it starts a new one
        existing = await self.conversations.for_channel(channel.id, ChannelKind.THREAD) \
            if isinstance(channel, discord.Thread) else None
        problem = await self.chat_refusal(interaction, channel, existing, model)
        choice = await self.chat_model(interaction, existing, model) if not problem and self.models.ready() else None
        if problem or isinstance(choice, Refusal):  # refused before anything is public: only the asker sees why
            await respond_ephemeral(interaction, problem or choice.message)  # type: ignore[union-attr]
            return
        response = ChatResponse(interaction, defer_after=self.DEFER_AFTER)  # opens with the first words
        try:
            choice = choice or await self.chat_model(interaction, existing, model)
            if isinstance(choice, Refusal):
                await response.open(fit(f"⚠️ {choice.message}"), None)
                return
            model_id, this_turn_only = choice
            attachments, rejected = await read_attachments([image] if image else [],
                                                           self.conversations.attachment_limits)
            # in a thread that carries no conversation yet, the thread itself becomes the conversation
            conversation = existing or await self.conversations.start(
                guild_id=interaction.guild_id, channel_id=interaction.channel_id, owner_id=interaction.user.id,
                model=model_id, title=thread_title(prompt), home_channel_id=home_channel(channel),
                thread_id=channel.id if isinstance(channel, discord.Thread) else None)
            view = self.make_view(channel=channel, channel_id=interaction.channel_id, open_first=response.open,
                                  rejected=rejected, asked_in=interaction.id, guild_id=interaction.guild_id,
                                  interaction=interaction)
            await self.run_answer(conversation, author=interaction.user, content=prompt, message_id=None,
                                  channel_id=interaction.channel_id, attachments=attachments, view=view,
                                  model=model_id if this_turn_only else None,
                                  options=AskOptions(search, Effort(reasoning.value) if reasoning else None))
        finally:
            response.close()
        if existing is None:
            await self.open_thread(conversation, view, prompt)

    async def chat_refusal(self, interaction: Interaction, channel: Any, existing: Conversation | None,
                           model: str | None) -> str | None:
        """Why `/chat` is refused here before anything else, if it is."""
        if await self.conversations.switched_off(interaction.guild_id, home_channel(channel)):
            return SWITCHED_OFF
        if isinstance(channel, discord.Thread) and existing is None \
                and not may_act_for(interaction.user, channel, channel.owner_id):
            return ("Only the person who started this thread, or a moderator, can make it a conversation. "
                    "Start your own with `/chat` in a channel.")
        shape = not_a_model_id(model) if model is not None else None
        return shape.message if shape else None

    async def chat_model(self, interaction: Interaction, existing: Conversation | None,
                         model: str | None) -> tuple[str, bool] | Refusal:
        """The model that answers, and whether for this question only. The conversation's owner or a
        moderator switches the conversation; another member's `model` answers their question alone."""
        if existing is not None and model is not None:
            if may_act_for(interaction.user, interaction.channel, existing.owner_id):
                switched = await self.conversations.switch_model(existing, model)
                return switched if isinstance(switched, Refusal) else (switched, False)
            checked = await self.models.check_model(interaction.guild_id, model)
            return checked if isinstance(checked, Refusal) else (checked, True)
        chosen = model or (existing.model if existing else await self.conversations.default_model(
            interaction.guild_id, home_channel(interaction.channel)))
        checked = await self.models.check_model(interaction.guild_id, chosen)
        return checked if isinstance(checked, Refusal) else (checked, False)

    @chat_command.autocomplete("model")
    async def chat_model_autocomplete(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self.model_choices(current, interaction.guild_id)

    async def open_thread(self, conversation: Conversation, view: DiscordAnswerView, prompt: str) -> None:
        """A public thread on the answer, where the conversation goes on (guild text channels only)."""
        if not view.messages or conversation.guild_id is None:
            return
        first = view.messages[0]
        if isinstance(first.channel, discord.Thread | discord.DMChannel):
            return
        try:
            await self.bot.pacer.acquire(None)  # a thread costs global budget (no channel bucket)
            thread = await first.create_thread(name=thread_title(prompt), auto_archive_duration=1440)
        except discord.HTTPException as exc:
            log.warning("could not open a thread for a conversation", conversation=conversation.id, error=str(exc))
            return
        await self.conversations.opened_thread(conversation, thread.id)

    # -- messages: threads, mentions, DMs -----------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        if not message.content.strip() and not message.attachments:
            return
        channel = message.channel
        kind = channel_kind(channel)
        if kind is ChannelKind.DM and not self.settings.allow_dms:
            await self.bot.pacer.acquire(channel.id)
            await channel.send("Chatting in direct messages is turned off for this bot.", allowed_mentions=NO_MENTIONS)
            return
        conversation = await self.conversations.for_channel(channel.id, kind)
        if kind is ChannelKind.THREAD and conversation is None:
            return  # a thread that is not a conversation
        mentioned = self.bot.user is not None and self.bot.user in message.mentions
        if kind is ChannelKind.CHANNEL and not mentioned:
            return
        bind_log_context(guild=message.guild.id if message.guild else None, channel=channel.id,
                         user=message.author.id)
        if message.guild and await self.conversations.switched_off(message.guild.id, home_channel(channel)):
            await self.say_switched_off(message)
            return
        try:
            await self.answer_message(message, conversation, self.strip_mention(message.content),
                                      start_thread=kind is ChannelKind.CHANNEL)
        except Exception:
            log.exception("answering a message failed", message=message.id)
            with contextlib.suppress(discord.HTTPException):
                await self.bot.pacer.acquire(message.channel.id)
                await message.channel.send("⚠️ Something went wrong while answering. It has been logged.",
                                           allowed_mentions=NO_MENTIONS)

    async def say_switched_off(self, message: discord.Message) -> None:
        """A short note, gone after a while, instead of an answer where moderators switched the bot off."""
        with contextlib.suppress(discord.HTTPException):
            await self.bot.pacer.acquire(message.channel.id)
            await message.reply(SWITCHED_OFF, mention_author=False, allowed_mentions=NO_MENTIONS,
                                delete_after=NOTE_SECONDS)

    def strip_mention(self, content: str) -> str:
        if self.bot.user is None:
            return content.strip()
        return re.sub(rf"<@!?{self.bot.user.id}>", "", content).strip()

    async def answer_message(self, message: discord.Message, conversation: Conversation | None, content: str,
                             *, start_thread: bool) -> None:
        channel = message.channel
        attachments, rejected = await read_attachments(message.attachments, self.conversations.attachment_limits)
        if conversation is None:
            conversation = await self.conversations.start(
                guild_id=message.guild.id if message.guild else None, channel_id=channel.id,
                owner_id=message.author.id, title=thread_title(content), home_channel_id=home_channel(channel))
        waiting = self.conversations.busy(conversation)

        view = self.make_view(channel=channel, channel_id=channel.id, open_first=replying_to(message),
                              rejected=rejected, asked_in=message.id,
                              guild_id=message.guild.id if message.guild else None)
        if waiting:  # say at once that this message was seen and waits its turn (the Stop button comes later)
            await view.open_waiting()
        await self.run_answer(conversation, author=message.author, content=content, message_id=message.id,
                              channel_id=channel.id, attachments=attachments, view=view)
        if start_thread:
            await self.open_thread(conversation, view, content)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if await self.conversations.messages_deleted([payload.message_id]):
            log.info("a deleted message left its conversation", message=payload.message_id)

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self.conversations.messages_deleted(sorted(payload.message_ids))

    # -- /model and /models -------------------------------------------------------------------------

    @app_commands.command(name="model", description="Show or switch the model of this conversation")
    @app_commands.describe(model="The model to switch to (leave empty to see the current one)")
    async def model_command(self, interaction: Interaction, model: str | None = None) -> None:
        channel = interaction.channel
        conversation = await self.conversations.for_channel(channel.id, channel_kind(channel)) if channel else None
        if conversation is None:
            await interaction.response.send_message(
                "Use this inside a conversation thread (start one with `/chat`).", ephemeral=True)
            return
        if model is None:
            await interaction.response.send_message(f"This conversation uses `{conversation.model}`.", ephemeral=True)
            return
        if not may_act_for(interaction.user, channel, conversation.owner_id):
            await interaction.response.send_message(
                "Only the person who started this conversation or a moderator can switch its model.", ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True)
        switched = await self.conversations.switch_model(conversation, model)
        if isinstance(switched, Refusal):
            await interaction.followup.send(fit(f"⚠️ {switched.message}"), ephemeral=True)
            return
        await interaction.followup.send(f"This conversation now uses `{switched}`.", ephemeral=True)

    @model_command.autocomplete("model")
    async def model_autocomplete(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self.model_choices(current, interaction.guild_id)

    @app_commands.command(name="models", description="Browse models with their prices")
    @app_commands.describe(search="Words to look for in the model's id or name")
    async def models_command(self, interaction: Interaction, search: str | None = None) -> None:
        await interaction.response.defer(ephemeral=True)
        try:
            found, total = await self.models.search_allowed(interaction.guild_id, search or "", limit=12)
        except OpenRouterError as exc:
            await interaction.followup.send(fit(f"⚠️ The models list is unavailable: {exc.user_message}"),
                                            ephemeral=True)
            return
        if not found:
            where = " on this server" if interaction.guild_id else ""
            await interaction.followup.send(fit(f"No allowed model{where} matches `{search or ''}`."), ephemeral=True)
            return
        embed = discord.Embed(title=f"Models matching “{search}”" if search else "Models you can use here",
                              description="\n\n".join(model_line(m) for m in found)[:4000])
        embed.set_footer(text=f"Showing {len(found)} of {total} allowed here. "
                              "Prices per million tokens, input / output.")
        await interaction.followup.send(embed=embed, ephemeral=True)

    # -- the Stop button ----------------------------------------------------------------------------

    async def handle_stop(self, interaction: Interaction) -> None:
        message_id = interaction.message.id if interaction.message else None
        answer = self.conversations.streaming_in(message_id) if message_id else None
        if answer is None:
            await interaction.response.send_message("This answer is not streaming any more.", ephemeral=True)
            return
        if not may_act_for(interaction.user, interaction.channel, answer.asker_id):
            await interaction.response.send_message(
                "Only the person who asked, or a moderator, can stop this answer.", ephemeral=True)
            return
        await interaction.response.defer()
        self.conversations.stop(answer, by=interaction.user.id)


async def setup(bot: ChatBot) -> None:
    await bot.add_cog(ChatCog(bot))
