"""What the core says to the Discord layer about one answer: the view it shows the answer in, and
how the answer ended."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from bot.states import AnswerStatus, CostSource, NoticeKind


class AnswerView(Protocol):
    """How the Discord layer shows one answer. `append` must not block: rendering is paced apart."""

    def begin(self, opened: Callable[[list[int]], Awaitable[None]]) -> None:
        """This answer's turn has come and its request goes out now: start showing it, without waiting.
        The view opens its first message when Discord allows (with the first words if they have come)
        and calls `opened` with the answer's message ids each time a message opens."""

    def message_ids(self) -> list[int]: ...

    def append(self, content: str, reasoning: str) -> None: ...

    async def notice(self, text: str, kind: NoticeKind = NoticeKind.NOTE) -> None: ...

    async def finish(self, outcome: AnswerOutcome) -> bool:
        """Show the answer's final form; False when it could not (it is shown again at the next start)."""


@dataclass(slots=True)
class AnswerOutcome:
    status: AnswerStatus
    content: str = ""
    reasoning: str = ""
    model: str | None = None
    provider: str | None = None
    tokens: int | None = None
    cost: Decimal | None = None
    cost_source: CostSource | None = None
    finish_reason: str | None = None
    error_message: str | None = None
    stopped_by: int | None = None
    turn_id: int | None = None
    sources: list[tuple[str, str]] = field(default_factory=list)  # what it cited: (url, title), numbered in order
