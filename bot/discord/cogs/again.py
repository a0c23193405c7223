"""Answering a question again: the Regenerate button and the "Retry with…" model picker under every
finished answer, and a member's edit of their last question. The new answer is a new message; it
replaces the old one in the conversation's history once it has something to say (see the core's
`ConversationService.again`). Only the asker or a moderator may ask again; it costs a new hold."""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.chat.conversations import Again, ConversationService
from bot.chat.view import AnswerOutcome
from bot.discord.bot import respond_ephemeral
from bot.discord.cogs.chat import home_channel, replying_to
from bot.discord.permissions import may_act_for
from bot.discord.render import DiscordAnswerView
from bot.logs import get_logger
from bot.openrouter.errors import OpenRouterError
from bot.policy import Refusal

if TYPE_CHECKING:
    from bot.discord.bot import ChatBot
    from bot.discord.cogs.chat import ChatCog

log = get_logger(__name__)
Interaction = discord.Interaction[Any]
PICKER_SIZE = 25  # Discord's most options in a select


class RegenerateButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"again:(?P<turn>\d+)"):
    """🔄 under an answer: the same question, the same model, a new answer."""

    def __init__(self, turn_id: int) -> None:
        super().__init__(discord.ui.Button(label="Regenerate", emoji="🔄", style=discord.ButtonStyle.secondary,
                                           custom_id=f"again:{turn_id}"))
        self.turn_id = turn_id

    @classmethod
    async def from_custom_id(cls, interaction: Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> RegenerateButton:
        return cls(int(match["turn"]))

    async def callback(self, interaction: Interaction) -> None:
        await again_cog(interaction).answer_again(interaction, self.turn_id, model=None)


class RetryWithPicker(discord.ui.DynamicItem[discord.ui.Select[Any]], template=r"retry:(?P<turn>\d+)"):
    """"Retry with…": the same question, answered by another allowed model."""

    def __init__(self, turn_id: int, options: list[discord.SelectOption] | None = None) -> None:
        super().__init__(discord.ui.Select(custom_id=f"retry:{turn_id}", placeholder="Retry with another model…",
                                           options=options or [discord.SelectOption(label="…", value="-")]))
        self.turn_id = turn_id

    @classmethod
    async def from_custom_id(cls, interaction: Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> RetryWithPicker:
        return cls(int(match["turn"]))

    async def callback(self, interaction: Interaction) -> None:
        chosen = self.item.values[0] if self.item.values else None
        await again_cog(interaction).answer_again(interaction, self.turn_id, model=chosen)


def again_cog(interaction: Interaction) -> AgainCog:
    cog = interaction.client.get_cog("AgainCog")
    assert isinstance(cog, AgainCog)
    return cog


class AgainCog(commands.Cog):
    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot
        self.conversations: ConversationService = bot.core.conversations

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(RegenerateButton, RetryWithPicker)  # they work after a restart too

    @property
    def chat(self) -> ChatCog:
        cog = self.bot.get_cog("ChatCog")
        assert cog is not None
        return cog  # type: ignore[return-value]

    async def final_view(self, outcome: AnswerOutcome, guild_id: int | None) -> discord.ui.View | None:
        """The buttons under a finished answer (a refusal has none): Regenerate, and the allowed models
        to retry with."""
        if outcome.turn_id is None:
            return None
        view = discord.ui.View(timeout=None)
        view.add_item(RegenerateButton(outcome.turn_id))
        with contextlib.suppress(OpenRouterError):
            allowed = await self.bot.core.models.allowed_models(guild_id)
            options = [discord.SelectOption(label=m.name[:100] or m.id[:100], value=m.id, description=m.id[:100])
                       for m in allowed if len(m.id) <= 100][:PICKER_SIZE]
            if options:
                view.add_item(RetryWithPicker(outcome.turn_id, options))
        return view

    # -- the buttons -------------------------------------------------------------------------------

    async def answer_again(self, interaction: Interaction, turn_id: int, *, model: str | None) -> None:
        again = await self.conversations.again(turn_id)
        problem = again.message if isinstance(again, Refusal) else await self.refusal(interaction, again, model)
        if problem is not None or isinstance(again, Refusal):
            await respond_ephemeral(interaction, problem or "This answer cannot be answered again.")
            return
        await interaction.response.defer()  # the new answer is a new message
        source = interaction.message
        channel = interaction.channel
        if source is None or not isinstance(channel, discord.abc.Messageable):
            return
        await self.run(again, channel, reply_to=source, asked_in=interaction.id, model=model, by=interaction.user.id)

    async def refusal(self, interaction: Interaction, again: Again, model: str | None) -> str | None:
        """Why this member may not have this question answered again (by `model`), if they may not."""
        if not may_act_for(interaction.user, interaction.channel, again.question.author_id):
            return "Only the person who asked, or a moderator, can have this answered again."
        if await self.conversations.switched_off(interaction.guild_id, home_channel(interaction.channel)):
            return "The moderators have switched the bot off in this channel."
        if model is not None:
            checked = await self.bot.core.models.check_model(interaction.guild_id, model)
            if isinstance(checked, Refusal):
                return checked.message
        return None

    async def run(self, again: Again, channel: discord.abc.Messageable, *,
                  reply_to: discord.Message | discord.PartialMessage, asked_in: int, model: str | None = None,
                  by: int | None = None) -> None:
        """The new answer, as a reply to `reply_to` (the old answer, or the edited question), billed to `by`
        (who pressed the button; the asker when None)."""
        channel_id = int(getattr(channel, "id", 0))

        view: DiscordAnswerView = self.chat.make_view(channel=channel, channel_id=channel_id,
                                                      open_first=replying_to(reply_to),
                                                      rejected=(), asked_in=asked_in,
                                                      guild_id=again.conversation.guild_id)
        try:
            await self.conversations.answer_again(again, view, model=model, by=by)
        finally:
            if view.stop_view is not None:
                view.stop_view.stop()

    # -- edits ---------------------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """A member edited a question: the store follows, and the last one is answered again."""
        author: dict[str, Any] = dict(payload.data.get("author", {}))
        if "content" not in payload.data or author.get("bot"):
            return
        again = await self.conversations.question_edited(payload.message_id,
                                                         self.chat.strip_mention(payload.data["content"]))
        if again is None:
            return
        if await self.conversations.switched_off(payload.guild_id, again.conversation.home_channel_id):
            return
        channel = self.bot.get_partial_messageable(payload.channel_id, guild_id=payload.guild_id)
        log.info("a question was edited; answering it again", message=payload.message_id)
        await self.run(again, channel, reply_to=channel.get_partial_message(payload.message_id),
                       asked_in=discord.utils.time_snowflake(discord.utils.utcnow()))  # asked again now


async def setup(bot: ChatBot) -> None:
    await bot.add_cog(AgainCog(bot))
