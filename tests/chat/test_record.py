"""Step five of an answer: what is stored and what is shown. Pure functions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.chat.record import answer_outcome, answer_record, refusal
from bot.chat.stream import Streamed
from bot.openrouter.errors import StreamInterrupted
from bot.openrouter.types import Completion, Usage
from bot.states import AnswerStatus, CostSource, TurnStatus


def test_a_complete_answer_is_stored_with_its_tokens_and_exact_cost() -> None:
    completion = Completion(generation_id="gen-1", model="openai/gpt-4o", provider="OpenAI", content="Hi",
                            reasoning="", finish_reason="stop", native_finish_reason="stop",
                            usage=Usage(prompt_tokens=10, completion_tokens=2, total_tokens=12, cost=Decimal("0.0001")))
    record = answer_record(Streamed(completion, TurnStatus.COMPLETE), Decimal("0.0001"))
    assert (record.status, record.content, record.reasoning, record.error) == (TurnStatus.COMPLETE, "Hi", None, None)
    assert (record.prompt_tokens, record.completion_tokens, record.cost_nusd) == (10, 2, 100_000)
    outcome = answer_outcome(Streamed(completion, TurnStatus.COMPLETE), Decimal("0.0001"), CostSource.USAGE,
                             planned_model="openai/gpt-4o", stopped_by=None, turn_id=7)
    assert (outcome.status, outcome.tokens, outcome.cost_source, outcome.turn_id) == (
        AnswerStatus.COMPLETE, 12, CostSource.USAGE, 7)


def test_an_error_is_stored_for_people_and_for_the_logs() -> None:
    error = StreamInterrupted("connection lost mid-stream: ReadError")
    streamed = Streamed(Completion(content="Part"), TurnStatus.ERROR, error)
    record = answer_record(streamed, None)
    assert record.status is TurnStatus.ERROR and record.cost_nusd is None
    assert record.error == f"{error.kind}: {error.detail}"
    outcome = answer_outcome(streamed, None, None, planned_model="openrouter/auto", stopped_by=None, turn_id=1)
    assert outcome.model == "openrouter/auto" and outcome.error_message == error.user_message


def test_a_refusal_is_shown_but_never_stored() -> None:
    outcome = refusal("No.")
    assert outcome.status is AnswerStatus.REFUSED and outcome.error_message == "No."
    with pytest.raises(ValueError):
        _ = outcome.status.stored


def test_a_stored_answer_shown_again_keeps_its_status_tokens_and_cost() -> None:
    from bot.chat.record import stored_outcome
    from bot.store.conversations import Turn

    turn = Turn(id=5, conversation_id=1, role="assistant", reply_to=4, author_id=None, content="Partial",
                reasoning=None, status=TurnStatus.STOPPED, model="openai/gpt-4o", discord_message_id=9,
                discord_message_ids=[9], discord_channel_id=2, finish_reason=None, cost_nusd=120_000,
                prompt_tokens=10, completion_tokens=3)
    outcome = stored_outcome(turn)
    assert (outcome.status, outcome.content, outcome.tokens, outcome.cost) == (
        AnswerStatus.STOPPED, "Partial", 13, Decimal("0.00012"))
    assert outcome.stopped_by is not None  # stopped by someone, not by a restart the footer would claim
