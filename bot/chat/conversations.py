"""Conversations as the Discord layer sees them: find the one a channel carries, start one, ask in
it, switch its model, and forget what people deleted. The one entry point of the chat core."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.chat.active import ActiveAnswer, ActiveAnswers
from bot.chat.attachments import AttachmentLimits
from bot.chat.pipeline import AnswerPipeline
from bot.chat.view import AnswerOutcome, AnswerView
from bot.logs import get_logger
from bot.policy import PLAIN_QUESTION, AskOptions, GuildPolicy, Refusal
from bot.states import ChannelKind, TurnStatus
from bot.store.conversations import Conversation, ConversationRepo, StoredAttachment, Turn

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Again:
    """A question to answer again, in its conversation."""

    conversation: Conversation
    question: Turn


class ConversationService:
    def __init__(self, *, repo: ConversationRepo, policy: GuildPolicy, pipeline: AnswerPipeline,
                 active: ActiveAnswers, attachment_limits: AttachmentLimits) -> None:
        self.repo = repo
        self.policy = policy
        self.pipeline = pipeline
        self.active = active
        self.attachment_limits = attachment_limits

    async def for_channel(self, channel_id: int, kind: ChannelKind) -> Conversation | None:
        """The conversation a thread carries, or the latest one of a DM; none in a plain channel."""
        if kind is ChannelKind.THREAD:
            return await self.repo.by_thread(channel_id)
        if kind is ChannelKind.DM:
            return await self.repo.latest_in_dm(channel_id)
        return None

    async def start(self, *, guild_id: int | None, channel_id: int, owner_id: int, title: str,
                    model: str | None = None, thread_id: int | None = None,
                    home_channel_id: int | None = None) -> Conversation:
        """A new conversation, on its channel's default model unless one is given. `home_channel_id` is the
        server channel whose persona and default model it follows (a thread's parent)."""
        model = model or await self.policy.default_model(guild_id, home_channel_id)
        conversation = await self.repo.create(guild_id=guild_id, channel_id=channel_id, owner_id=owner_id,
                                              model=model, title=title, thread_id=thread_id,
                                              home_channel_id=home_channel_id if guild_id else None)
        log.info("conversation started", conversation=conversation.id, model=model)
        return conversation

    async def default_model(self, guild_id: int | None, channel_id: int | None = None) -> str:
        return await self.policy.default_model(guild_id, channel_id)

    async def switched_off(self, guild_id: int | None, channel_id: int | None) -> bool:
        """Whether moderators switched the bot off in this server channel (a thread passes its parent)."""
        return await self.policy.switched_off(guild_id, channel_id)

    async def ask(self, conversation: Conversation, *, author_id: int, content: str, message_id: int | None,
                  channel_id: int | None, attachments: Sequence[StoredAttachment], view: AnswerView,
                  model: str | None = None, author_name: str | None = None,
                  options: AskOptions = PLAIN_QUESTION) -> AnswerOutcome:
        """Store the question at once (nothing said is lost while it waits), with who asked, then answer
        it in turn, by `model` for this question only when given (checked with `check_model` beforehand)."""
        question = await self.repo.add_user_turn(conversation.id, author_id=author_id, content=content,
                                                 message_id=message_id, channel_id=channel_id, attachments=attachments,
                                                 author_name=author_name)
        return await self.pipeline.answer(conversation, question, view, model=model, options=options)

    async def again(self, answer_turn_id: int) -> Again | Refusal:
        """What answering a question again (Regenerate, retry with another model) needs, from one of
        its answers: refused when that answer was replaced or is still being written."""
        answer = await self.repo.get_turn(answer_turn_id)
        question = await self.repo.get_turn(answer.reply_to, live=True) if answer and answer.reply_to else None
        conversation = await self.repo.get(answer.conversation_id) if answer else None
        if answer is None or question is None or conversation is None:
            return Refusal("This answer's question is gone, so it cannot be answered again.")
        if answer.superseded_by is not None:
            return Refusal("A newer answer has replaced this one: use the buttons under that one.")
        if answer.status is TurnStatus.STREAMING:
            return Refusal("This answer is still being written.")
        return Again(conversation, question)

    async def answer_again(self, again: Again, view: AnswerView, *, model: str | None = None,
                           by: int | None = None) -> AnswerOutcome:
        """Answer the question again, by `model` for this answer only when given (checked beforehand),
        billed to whoever asked for it (`by`: the asker, or a moderator); a new answer with something to
        say replaces the earlier ones in the history."""
        return await self.pipeline.answer(again.conversation, again.question, view, model=model,
                                          options=AskOptions(billed_to=by))

    async def question_edited(self, message_id: int, content: str) -> Again | None:
        """A member edited a question: its stored text follows. Returned when it is still its
        conversation's last question (it is answered again), else None."""
        question = await self.repo.question_by_message(message_id)
        if question is None or question.content == content:
            return None
        await self.repo.edit_question(question.id, content)
        last = await self.repo.last_question(question.conversation_id)
        conversation = await self.repo.get(question.conversation_id)
        if last is None or last.id != question.id or conversation is None:
            return None
        return Again(conversation, replace(question, content=content))

    def busy(self, conversation: Conversation) -> bool:
        """Whether an answer is being written in this conversation (a new question will wait)."""
        return self.active.busy(conversation.id)

    async def switch_model(self, conversation: Conversation, model_id: str) -> str | Refusal:
        """Switch to `model_id` if it exists and the server allows it; the model's id, or why not."""
        checked = await self.policy.check_model(conversation.guild_id, model_id)
        if isinstance(checked, str) and checked != conversation.model:
            await self.repo.set_model(conversation.id, checked)
        return checked

    async def opened_thread(self, conversation: Conversation, thread_id: int) -> None:
        """The conversation goes on in this thread from now on."""
        await self.repo.set_thread(conversation.id, thread_id)

    async def messages_deleted(self, message_ids: Sequence[int]) -> int:
        """Deleted Discord messages leave the context (a question takes its answer along)."""
        return await self.repo.mark_deleted(message_ids)

    async def unshown_answers(self) -> list[Turn]:
        """Finished answers whose final form never reached Discord: to show again at start."""
        return await self.repo.unshown_answers()

    async def answer_shown(self, turn_id: int, message_ids: Sequence[int]) -> None:
        await self.repo.set_answer_messages(turn_id, message_ids, shown=True)

    def streaming_in(self, message_id: int) -> ActiveAnswer | None:
        """The answer streaming in this Discord message, if any."""
        return self.active.find(message_id)

    def stop(self, answer: ActiveAnswer, *, by: int) -> bool:
        return self.active.stop(answer, by=by)
