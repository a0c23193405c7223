"""The third step of an answer: stream it from OpenRouter into its view, saving progress as it goes.

Ends in one of four ways: complete, stopped (the Stop button cancelled it), error (OpenRouter said
so, with whatever had arrived), or interrupted (the caller itself was cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from bot.chat.active import ActiveAnswer
from bot.chat.view import AnswerView
from bot.logs import get_logger
from bot.metrics import Metrics
from bot.openrouter.client import ChatStream, OpenRouterClient, RetryNotice
from bot.openrouter.errors import OpenRouterError
from bot.openrouter.types import ChatRequest, Completion
from bot.states import NoticeKind, TurnStatus
from bot.store.conversations import ConversationRepo
from bot.store.database import STORE_ERRORS

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Streamed:
    completion: Completion
    status: TurnStatus
    error: OpenRouterError | None = None


class AnswerStreamer:
    def __init__(self, *, client: OpenRouterClient, repo: ConversationRepo, progress_save_interval: float,
                 metrics: Metrics | None = None) -> None:
        self.client = client
        self.repo = repo
        self.progress_save_interval = progress_save_interval
        self.metrics = metrics or Metrics()

    async def run(self, request: ChatRequest, view: AnswerView, active: ActiveAnswer) -> Streamed:
        if active.stop_requested:  # stopped before its request went out: nothing is asked, nothing billed
            return Streamed(Completion(), TurnStatus.STOPPED)
        async def on_retry(notice: RetryNotice) -> None:
            self.metrics.openrouter_error(notice.error.kind)
            await view.notice(f"{notice.error.user_message} Retrying in {max(1, round(notice.delay))} s…",
                              NoticeKind.PROGRESS)

        async def on_generation(generation_id: str) -> None:
            # saved at once: an answer stopped, failed or cut by a crash before its first token is
            # still settled through `/generation`
            await self._save_progress(active.turn_id, stream.completion)

        stream = self.client.stream_chat(request, on_retry=on_retry, on_generation=on_generation)
        task = active.task = asyncio.create_task(self._consume(stream, view, active.turn_id),
                                                 name=f"answer-{active.turn_id}")
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            # The caller itself is being cancelled: stop the stream, keep what arrived, and let the
            # caller store it before the cancellation goes on.
            active.cancelled_from_outside = True
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            return Streamed(stream.completion, TurnStatus.INTERRUPTED)
        if task.cancelled():
            return Streamed(stream.completion, TurnStatus.STOPPED)
        exc = task.exception()
        if exc is None:
            return Streamed(stream.completion, TurnStatus.COMPLETE)
        if isinstance(exc, OpenRouterError):
            self.metrics.openrouter_error(exc.kind)
            return Streamed(exc.partial or stream.completion, TurnStatus.ERROR, exc)
        raise exc

    async def _consume(self, stream: ChatStream, view: AnswerView, turn_id: int) -> None:
        loop = asyncio.get_running_loop()
        saved_at = asked_at = loop.time()
        waiting = True  # for the first token: how long OpenRouter takes (retries included)
        async with stream:
            async for delta in stream:
                if waiting:
                    self.metrics.first_token(loop.time() - asked_at)
                    waiting = False
                view.append(delta.content, delta.reasoning)
                if loop.time() - saved_at >= self.progress_save_interval:
                    # a crash now still leaves most of the answer in the store
                    saved_at = loop.time()
                    await self._save_progress(turn_id, stream.completion)

    async def _save_progress(self, turn_id: int, snapshot: Completion) -> None:
        """Best effort: a database that is locked or full for a moment never ends the stream."""
        try:
            await self.repo.save_progress(turn_id, snapshot.content, snapshot.generation_id,
                                          snapshot.earlier_generations)
        except STORE_ERRORS as exc:
            log.warning("could not save an answer's progress; streaming on", turn=turn_id, error=repr(exc))
