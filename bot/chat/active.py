"""The answers streaming right now: one at a time per conversation, stoppable, and waited for at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

from bot.chat.view import AnswerView
from bot.logs import get_logger

log = get_logger(__name__)


@dataclass(slots=True, eq=False)
class ActiveAnswer:
    """An answer from its first message on: `task` streams it once its request goes out; a Stop that
    comes before that is remembered (`stop_requested`) and the request is never sent."""

    turn_id: int  # 0 until its turn is stored
    asker_id: int | None
    view: AnswerView
    task: asyncio.Task[None] | None = None
    stopped_by: int | None = None
    stop_requested: bool = False
    cancelled_from_outside: bool = False


class ActiveAnswers:
    def __init__(self) -> None:
        self._answers: dict[int, ActiveAnswer] = {}  # by id() of the answer
        self._idle = asyncio.Event()
        self._idle.set()
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self.closing = False  # shutting down: no new answer starts

    def lock_for(self, conversation_id: int) -> asyncio.Lock:
        """Held while a conversation answers: the next question waits for its turn."""
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        return lock

    def busy(self, conversation_id: int) -> bool:
        lock = self._locks.get(conversation_id)
        return lock is not None and lock.locked()

    def __len__(self) -> int:
        return len(self._answers)

    @contextlib.contextmanager
    def running(self, answer: ActiveAnswer) -> Iterator[ActiveAnswer]:
        self._answers[id(answer)] = answer
        self._idle.clear()
        try:
            yield answer
        finally:
            self._answers.pop(id(answer), None)
            if not self._answers:
                self._idle.set()

    def find(self, message_id: int) -> ActiveAnswer | None:
        """The streaming answer shown in this Discord message, if any."""
        return next((a for a in self._answers.values() if message_id in a.view.message_ids()), None)

    def stop(self, answer: ActiveAnswer, *, by: int | None) -> bool:
        """Stop one answer (the Stop button): its partial text is kept; before its request went out,
        the request is never sent."""
        if id(answer) not in self._answers or (answer.task is not None and answer.task.done()):
            return False
        answer.stopped_by = by
        answer.stop_requested = True
        if answer.task is not None:
            answer.task.cancel()
        return True

    async def shutdown(self, grace: float = 3.0) -> None:
        """Let answers finish for `grace` seconds, then stop the rest (kept, marked stopped). Their
        settlement and record still run, for at most a few more seconds."""
        self.closing = True
        if self._answers:
            log.info("waiting for answers to finish", count=len(self._answers), grace=grace)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        for answer in list(self._answers.values()):
            self.stop(answer, by=None)  # stopped by nobody: the bot is shutting down
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), 5)
