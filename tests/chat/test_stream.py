"""Step three of an answer: streaming into the view, from the local OpenRouter server, and the four
ways it ends (complete, stopped, error, interrupted), progress saved on the way."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.chat.active import ActiveAnswer
from bot.chat.plan import AnswerPlan
from bot.chat.stream import Streamed
from bot.states import TurnStatus
from tests.core_harness import CoreParts, RecordingView, conversation_with_question
from tests.fakes.openrouter_server import SSEReply


def frame(gen_id: str, content: str | None = None, finish: str | None = None, **extra: object) -> bytes:
    delta = {"content": content} if content is not None else {}
    chunk = {"id": gen_id, "model": "openai/gpt-4o", "choices": [{"index": 0, "delta": delta,
                                                                   "finish_reason": finish}], **extra}
    return f"data: {json.dumps(chunk)}\n\n".encode()


async def start(parts: CoreParts) -> tuple[AnswerPlan, ActiveAnswer, RecordingView]:
    conversation, question = await conversation_with_question(parts)
    plan = await parts.core.conversations.pipeline.planner.plan(conversation, question)
    assert isinstance(plan, AnswerPlan)
    turn_id = await parts.repo.start_answer(conversation.id, reply_to=question.id, model="openai/gpt-4o",
                                            message_ids=[], channel_id=2)
    view = RecordingView()
    return plan, ActiveAnswer(turn_id, 3, view), view


async def run(parts: CoreParts, plan: AnswerPlan, active: ActiveAnswer) -> Streamed:
    return await parts.core.conversations.pipeline.streamer.run(plan.request(100), active.view, active)


async def test_a_complete_answer_reaches_the_view_piece_by_piece(parts: CoreParts) -> None:
    parts.fake.script("chat", SSEReply(events=[frame("gen-a", "Hel"), frame("gen-a", "lo"),
                                               frame("gen-a", "", "stop"), b"data: [DONE]\n\n"]))
    plan, active, view = await start(parts)
    streamed = await run(parts, plan, active)
    assert streamed.status is TurnStatus.COMPLETE and streamed.error is None
    assert view.content == ["Hel", "lo"] and streamed.completion.content == "Hello"


async def test_an_error_mid_stream_keeps_what_arrived(parts: CoreParts) -> None:
    error = {"id": "gen-e", "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
             "error": {"code": 502, "message": "Provider disconnected"}}
    parts.fake.script("chat", SSEReply(events=[frame("gen-e", "Part"), f"data: {json.dumps(error)}\n\n".encode()]))
    plan, active, _ = await start(parts)
    streamed = await run(parts, plan, active)
    assert streamed.status is TurnStatus.ERROR and streamed.error is not None
    assert streamed.completion.content == "Part"


async def test_stop_keeps_the_partial_answer_and_progress_is_saved(parts: CoreParts) -> None:
    parts.fake.tokens_per_second = 40
    parts.fake.reply_text = "word " * 200
    parts.core.conversations.pipeline.streamer.progress_save_interval = 0.05
    plan, active, view = await start(parts)
    running = asyncio.create_task(run(parts, plan, active))
    await view.wait_for_pieces(5)
    assert active.task is not None
    active.task.cancel()  # what the Stop button does
    streamed = await running
    assert streamed.status is TurnStatus.STOPPED and streamed.completion.content == "".join(view.content)
    saved = await parts.repo.get_turn(active.turn_id)
    assert saved is not None and saved.content and streamed.completion.content.startswith(saved.content)


async def test_a_cancelled_caller_gets_an_interrupted_answer_to_store(parts: CoreParts) -> None:
    parts.fake.tokens_per_second = 40
    parts.fake.reply_text = "word " * 200
    plan, active, view = await start(parts)
    running = asyncio.create_task(run(parts, plan, active))
    await view.wait_for_pieces(1)
    running.cancel()  # e.g. the process is shutting down under the caller
    streamed = await running
    assert streamed.status is TurnStatus.INTERRUPTED and active.cancelled_from_outside
    assert streamed.completion.content


@pytest.mark.sqlite_only
async def test_progress_saves_are_best_effort_when_another_process_holds_the_database(parts: CoreParts) -> None:
    import sqlite3

    parts.fake.tokens_per_second = 100
    parts.fake.reply_text = "word " * 60
    parts.core.conversations.pipeline.streamer.progress_save_interval = 0.05
    plan, active, view = await start(parts)
    parts.db.busy_timeout_ms = 20  # type: ignore[attr-defined]
    other = sqlite3.connect(parts.db.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock for the whole stream
        streamed = await run(parts, plan, active)
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert streamed.status is TurnStatus.COMPLETE and streamed.completion.content == "word " * 60
    assert "".join(view.content) == streamed.completion.content


async def test_a_stop_before_the_request_goes_out_sends_nothing(parts: CoreParts) -> None:
    plan, active, view = await start(parts)
    active.stop_requested = True  # the Stop button on the first message, before the stream started
    streamed = await run(parts, plan, active)
    assert streamed.status is TurnStatus.STOPPED and streamed.completion.content == "" and view.content == []
    assert parts.fake.chat_requests() == []
