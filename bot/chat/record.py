"""The last step of an answer: what is stored of it, and what people are shown. Pure functions."""

from __future__ import annotations

from decimal import Decimal

from bot.chat.stream import Streamed
from bot.chat.view import AnswerOutcome
from bot.money import from_nusd, to_nusd
from bot.states import AnswerStatus, CostSource, TurnStatus
from bot.store.conversations import AnswerRecord, Turn

REPLACING = frozenset({TurnStatus.COMPLETE, TurnStatus.STOPPED})  # with text: it replaces earlier answers


def answer_record(streamed: Streamed, cost: Decimal | None) -> AnswerRecord:
    completion, error, usage = streamed.completion, streamed.error, streamed.completion.usage
    return AnswerRecord(
        content=completion.content, status=streamed.status, reasoning=completion.reasoning or None,
        error=f"{error.kind}: {error.detail}" if error else None,
        model=completion.model, provider=completion.provider, generation_id=completion.generation_id,
        finish_reason=completion.finish_reason, native_finish_reason=completion.native_finish_reason,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        reasoning_tokens=usage.reasoning_tokens if usage else None,
        cost_nusd=to_nusd(cost) if cost is not None else None,
        sources=[(c.url, c.title) for c in completion.citations],
        replaces_earlier=bool(completion.content.strip()) and streamed.status in REPLACING,
    )


def answer_outcome(streamed: Streamed, cost: Decimal | None, source: CostSource | None, *, planned_model: str,
                   stopped_by: int | None, turn_id: int) -> AnswerOutcome:
    completion, error, usage = streamed.completion, streamed.error, streamed.completion.usage
    return AnswerOutcome(
        status=AnswerStatus(streamed.status.value), content=completion.content, reasoning=completion.reasoning,
        model=completion.model or planned_model, provider=completion.provider,
        tokens=usage.total_tokens if usage else None, cost=cost, cost_source=source,
        finish_reason=completion.finish_reason, error_message=error.user_message if error else None,
        stopped_by=stopped_by, turn_id=turn_id, sources=[(c.url, c.title) for c in completion.citations],
    )


STOPPED_BY_SOMEONE = 0


def stored_outcome(turn: Turn) -> AnswerOutcome:
    """A finished answer as it was stored, to show again (notices are not stored, so not shown)."""
    tokens = (turn.prompt_tokens or 0) + (turn.completion_tokens or 0) \
        if turn.prompt_tokens is not None or turn.completion_tokens is not None else None
    return AnswerOutcome(
        status=AnswerStatus(turn.status.value), content=turn.content, reasoning=turn.reasoning or "",
        model=turn.model, tokens=tokens, cost=from_nusd(turn.cost_nusd) if turn.cost_nusd is not None else None,
        # who stopped a stopped answer is not stored: someone did (None would claim the bot was restarting)
        finish_reason=turn.finish_reason, stopped_by=STOPPED_BY_SOMEONE, turn_id=turn.id, sources=list(turn.sources))


def refusal(message: str) -> AnswerOutcome:
    return AnswerOutcome(status=AnswerStatus.REFUSED, error_message=message)
