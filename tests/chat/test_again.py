"""Answering a question again: Regenerate, retry with another model, and edit to rerun (the core)."""

from __future__ import annotations

from bot.chat.conversations import Again
from bot.policy import Refusal
from tests.conftest import fixture_bytes
from tests.core_harness import CoreParts, RecordingView
from tests.fakes.openrouter_server import JSONReply


async def first_answer(parts: CoreParts, text: str = "What is Rust?", message_id: int = 500) -> tuple[int, int]:
    """A conversation with one answered question; (conversation id, answer turn id)."""
    conversations = parts.core.conversations
    conv = await conversations.start(guild_id=1, channel_id=2, owner_id=3, model="openai/gpt-4o", title="t")
    view = RecordingView()
    await conversations.ask(conv, author_id=3, content=text, message_id=message_id, channel_id=2, attachments=(),
                            view=view)
    assert view.outcome is not None and view.outcome.turn_id is not None
    return conv.id, view.outcome.turn_id


async def answers(parts: CoreParts) -> list[tuple[object, ...]]:
    rows = await parts.db.fetchall("SELECT id, content, status, superseded_by FROM turns WHERE role = 'assistant' "
                                   "ORDER BY id")
    return [tuple(r) for r in rows]


async def test_regenerate_replaces_the_answer_in_the_history_and_holds_again(parts: CoreParts) -> None:
    conversations = parts.core.conversations
    conv_id, first = await first_answer(parts)
    again = await conversations.again(first)
    assert isinstance(again, Again) and again.question.content == "What is Rust?"
    view = RecordingView()
    await conversations.answer_again(again, view, model="openai/gpt-3.5-turbo")  # retry with another model
    assert view.outcome is not None and view.outcome.status == "complete"
    second = view.outcome.turn_id
    assert await answers(parts) == [(first, "Echo: What is Rust?", "complete", second),
                                    (second, "Echo: What is Rust?", "complete", None)]
    [*_, request] = parts.fake.chat_requests()
    assert request.json()["model"] == "openai/gpt-3.5-turbo"
    conversation = await conversations.repo.get(conv_id)
    assert conversation is not None and conversation.model == "openai/gpt-4o"  # the conversation keeps its model
    rows = await parts.db.fetchall("SELECT turn_id FROM reservations ORDER BY id")
    assert [r[0] for r in rows] == [first, second]  # a new hold, settled apart

    # the next question sees the question once, with the answer that replaced the first
    follow_up = RecordingView()
    await conversations.ask(conversation, author_id=3, content="And Go?", message_id=None, channel_id=2,
                            attachments=(), view=follow_up)
    roles = [m["role"] for m in parts.fake.chat_requests()[-1].json()["messages"]]
    assert roles == ["system", "user", "assistant", "user"]

    refused = await conversations.again(first)
    assert isinstance(refused, Refusal) and "newer answer has replaced" in refused.message


async def test_a_failed_regeneration_leaves_the_answer_in_place(parts: CoreParts) -> None:
    conversations = parts.core.conversations
    _, first = await first_answer(parts)
    again = await conversations.again(first)
    assert isinstance(again, Again)
    parts.fake.script("chat", JSONReply(402, fixture_bytes("error-402-with-metadata.json")))
    view = RecordingView()
    await conversations.answer_again(again, view)
    assert view.outcome is not None and view.outcome.status == "error"
    [(_, _, _, superseded), (_, _, status, _)] = await answers(parts)
    assert superseded is None and status == "error"
    assert isinstance(await conversations.again(first), Again)  # it can still be asked again


async def test_editing_the_last_question_answers_it_again(parts: CoreParts) -> None:
    conversations = parts.core.conversations
    conv_id, _ = await first_answer(parts, "What is Rsut?", message_id=500)
    assert await conversations.question_edited(999, "unknown message") is None
    assert await conversations.question_edited(500, "What is Rsut?") is None  # unchanged text (an unfurl)
    again = await conversations.question_edited(500, "What is Rust?")
    assert isinstance(again, Again) and again.question.content == "What is Rust?"
    await conversations.answer_again(again, RecordingView())
    assert parts.fake.chat_requests()[-1].json()["messages"][-1]["content"] == "What is Rust?"
    assert [r[1] for r in await answers(parts)] == ["Echo: What is Rsut?", "Echo: What is Rust?"]

    conversation = await conversations.repo.get(conv_id)
    assert conversation is not None
    await conversations.ask(conversation, author_id=3, content="And Go?", message_id=501, channel_id=2,
                            attachments=(), view=RecordingView())
    asked = len(parts.fake.chat_requests())
    assert await conversations.question_edited(500, "What is Rust, really?") is None  # no longer the last one
    assert len(parts.fake.chat_requests()) == asked
    [(stored, edited)] = await parts.db.fetchall("SELECT content, edited_at FROM turns WHERE discord_message_id = 500")
    assert stored == "What is Rust, really?" and edited is not None  # but its text follows the edit


async def test_whoever_asks_again_pays_for_the_new_answer(parts: CoreParts) -> None:
    conversations = parts.core.conversations
    _, first = await first_answer(parts)  # asked by member 3
    again = await conversations.again(first)
    assert isinstance(again, Again)
    await conversations.answer_again(again, RecordingView(), by=42)  # a moderator pressed Regenerate
    await conversations.answer_again(again, RecordingView())  # no one named: the asker
    rows = await parts.db.fetchall("SELECT user_id FROM reservations ORDER BY id")
    assert [r[0] for r in rows] == [3, 42, 3]
