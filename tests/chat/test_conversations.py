"""The chat core's entry point as the Discord layer uses it, on a real SQLite file."""

from __future__ import annotations

from bot.policy import Refusal
from bot.states import ChannelKind
from tests.core_harness import CoreParts, RecordingView


async def test_the_conversation_of_a_channel(parts: CoreParts) -> None:
    conversations = parts.core.conversations
    in_thread = await conversations.start(guild_id=1, channel_id=10, owner_id=3, title="t", thread_id=11)
    assert in_thread.model == "openai/gpt-4o"  # the server's default
    older = await conversations.start(guild_id=None, channel_id=20, owner_id=3, title="dm")
    newer = await conversations.start(guild_id=None, channel_id=20, owner_id=3, title="dm")
    assert (await conversations.for_channel(11, ChannelKind.THREAD)) == in_thread
    assert (await conversations.for_channel(20, ChannelKind.DM)) == newer != older
    assert await conversations.for_channel(10, ChannelKind.CHANNEL) is None
    assert await conversations.for_channel(12, ChannelKind.THREAD) is None


async def test_switching_models_checks_the_allowlist(parts: CoreParts) -> None:
    conversations = parts.core.conversations
    conversation = await conversations.start(guild_id=1, channel_id=10, owner_id=3, title="t")
    refused = await conversations.switch_model(conversation, "anthropic/claude-sonnet-4")
    assert isinstance(refused, Refusal) and "not allowed" in refused.message
    unknown = await conversations.switch_model(conversation, "openai/gpt-4")
    assert isinstance(unknown, Refusal) and "Did you mean" in unknown.message
    assert await conversations.switch_model(conversation, " openai/gpt-3.5-turbo ") == "openai/gpt-3.5-turbo"
    assert (await parts.repo.get(conversation.id)).model == "openai/gpt-3.5-turbo"  # type: ignore[union-attr]


async def test_asking_stores_the_question_then_answers_and_deleting_forgets(parts: CoreParts) -> None:
    conversations = parts.core.conversations
    conversation = await conversations.start(guild_id=1, channel_id=10, owner_id=3, title="t")
    view = RecordingView()
    outcome = await conversations.ask(conversation, author_id=3, content="Hi", message_id=77, channel_id=10,
                                      attachments=(), view=view)
    assert outcome.status == "complete" and not conversations.busy(conversation)
    history = await parts.repo.history(conversation.id)
    assert [(t.role, t.status) for t in history] == [("user", "complete"), ("assistant", "complete")]
    assert await conversations.messages_deleted([77]) == 1
    assert await parts.repo.history(conversation.id) == [history[1]]


async def test_a_question_during_shutdown_is_kept_and_answered_politely(parts: CoreParts) -> None:
    conversations = parts.core.conversations
    conversation = await conversations.start(guild_id=1, channel_id=10, owner_id=3, title="t")
    await parts.core.shutdown(grace=0.1)
    view = RecordingView()
    outcome = await conversations.ask(conversation, author_id=3, content="Still there?", message_id=78,
                                      channel_id=10, attachments=(), view=view)
    assert outcome.status == "refused" and "restarting" in (outcome.error_message or "")
    assert view.outcome is outcome and parts.fake.chat_requests() == []
    assert [t.content for t in await parts.repo.history(conversation.id)] == ["Still there?"]
