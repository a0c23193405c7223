"""One answer, step by step: plan → hold → stream → settle → record, one at a time per conversation.

Each step lives in its own module (`plan`, `hold`, `stream`, `settle`, `record`); this one only
orders them and makes sure a hold never stays open, whatever ends the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from typing import TypeVar

import structlog

from bot.chat.active import ActiveAnswer, ActiveAnswers
from bot.chat.hold import BudgetHolds
from bot.chat.plan import AnswerPlan, AnswerPlanner
from bot.chat.record import answer_outcome, answer_record, refusal
from bot.chat.settle import CostSettler
from bot.chat.stream import AnswerStreamer
from bot.chat.view import AnswerOutcome, AnswerView
from bot.logs import get_logger
from bot.metrics import Metrics
from bot.policy import PLAIN_QUESTION, AskOptions, Refusal
from bot.quotas import QuotaRefusal, Reservation
from bot.store.conversations import Conversation, ConversationRepo, Turn
from bot.store.database import STORE_ERRORS, Durability

log = get_logger(__name__)
T = TypeVar("T")
RESTARTING = "I am restarting right now, so I did not send this to the model. Your message is kept: ask again " \
             "in a minute and I will answer."


class AnswerPipeline:
    PREPARING = 8  # answers planned and held at once; the rest wait their turn (see `_answer`)

    def __init__(self, *, repo: ConversationRepo, planner: AnswerPlanner, holds: BudgetHolds,
                 streamer: AnswerStreamer, settler: CostSettler, active: ActiveAnswers,
                 durability: Durability | None = None, metrics: Metrics | None = None) -> None:
        self.repo = repo
        self.planner = planner
        self.holds = holds
        self.streamer = streamer
        self.settler = settler
        self.active = active
        self.durability = durability or Durability()
        self.metrics = metrics or Metrics()
        self._preparing = asyncio.Semaphore(self.PREPARING)

    async def answer(self, conversation: Conversation, question: Turn, view: AnswerView, *,
                     model: str | None = None, options: AskOptions = PLAIN_QUESTION) -> AnswerOutcome:
        """Answer `question` in `conversation`, one answer at a time per conversation; `model` answers
        this question only (the conversation keeps its own), with what `options` ask."""
        async with self.active.lock_for(conversation.id):
            if self.active.closing:
                return await self._refuse(view, RESTARTING)
            fresh = await self.repo.get(conversation.id) or conversation  # /model may have switched it
            if model is not None:
                fresh = replace(fresh, model=model)
            with structlog.contextvars.bound_contextvars(conversation=conversation.id, model=fresh.model):
                return await self._answer(fresh, question, view, options)

    async def _answer(self, conversation: Conversation, question: Turn, view: AnswerView,
                      options: AskOptions) -> AnswerOutcome:
        """Plan, hold, stream, settle and record; a few answers are planned and held at once (see
        `_preparation`)."""
        async with self._preparation() as prepared:
            return await self._prepare_and_stream(conversation, question, view, options, prepared)

    @asynccontextmanager
    async def _preparation(self) -> AsyncIterator[Callable[[], None]]:
        """A turn among the answers being planned and held, until the callable given is called (when its
        request is about to go out) or the block ends. When many questions come at once, the first ones'
        requests go out at once instead of all of them together at the end: their first words come
        sooner, and Discord's write budget is spent on them from the start."""
        await self._preparing.acquire()
        held = True

        def done() -> None:
            nonlocal held
            if held:
                held = False
                self._preparing.release()

        try:
            yield done
        finally:
            done()

    async def _prepare_and_stream(self, conversation: Conversation, question: Turn, view: AnswerView,
                                  options: AskOptions, prepared: Callable[[], None]) -> AnswerOutcome:
        plan = await self.planner.plan(conversation, question, options)
        if isinstance(plan, Refusal):
            prepared()
            return await self._refuse(view, plan.message)
        for text in plan.notices:
            await view.notice(text)
        reservation = await self.holds.take(plan)
        if isinstance(reservation, QuotaRefusal):
            prepared()
            return await self._refuse(view, reservation.message)
        if reservation.lowered:
            await view.notice(f"The answer is limited to {reservation.max_tokens:,} tokens by what is left of "
                              f"the budget.")
        active = ActiveAnswer(0, question.author_id, view)  # stoppable from its first message on
        with self.active.running(active):
            try:
                active.turn_id = await self.repo.start_answer(
                    conversation.id, reply_to=question.id, model=plan.request_plan.model,
                    message_ids=view.message_ids(), channel_id=question.discord_channel_id)
                await self.holds.link(reservation, active.turn_id)
            except BaseException:
                await self._land("release a hold", partial(self.holds.release, reservation, may_have_run=False))
                raise
            prepared()
            # the request goes out at once; the view opens its message when Discord allows, with the
            # first words if they have come by then
            view.begin(partial(self._messages_opened, active.turn_id))
            outcome = await self._stream_and_record(plan, reservation, active)
        if active.cancelled_from_outside:
            raise asyncio.CancelledError  # the cancellation goes on, now that the answer is stored
        return outcome

    async def _stream_and_record(self, plan: AnswerPlan, reservation: Reservation,
                                 active: ActiveAnswer) -> AnswerOutcome:
        """Stream, settle the cost, store the answer, then show its final form. The settlement and the
        record are retried until they land; the view is finished whatever the store says."""
        view = active.view
        try:
            request = plan.request(reservation.max_tokens, reservation.price_cap)
            streamed = await self.streamer.run(request, view, active)
            cost, source = await self.settler.cost_of(streamed.completion, plan.model,
                                                      prompt_tokens=plan.context.prompt_tokens, images=plan.images,
                                                      searched=plan.request_plan.web_search,
                                                      pdf_pages=reservation.pdf_pages)
        except BaseException:
            await self._land("release a hold", partial(self.holds.release, reservation, may_have_run=True))
            raise
        model = streamed.completion.model
        for warning in await self._land("settle an answer", partial(
                self.settler.settle, reservation, cost, source, model)) or []:
            await view.notice(warning)
        await self._land("record an answer", partial(self.repo.finish_answer, active.turn_id,
                                                     answer_record(streamed, cost)))
        outcome = answer_outcome(streamed, cost, source, planned_model=plan.request_plan.model,
                                 stopped_by=active.stopped_by, turn_id=active.turn_id)
        log.info("answer finished", turn=active.turn_id, status=outcome.status, model=outcome.model,
                 generation_id=streamed.completion.generation_id, cost=str(cost), cost_source=source)
        self.metrics.answer_finished(outcome.status, streamed.completion.usage)
        shown = False
        try:
            shown = await view.finish(outcome)
        finally:
            await self._land("record an answer's messages", partial(self.repo.set_answer_messages, active.turn_id,
                                                                    view.message_ids(), shown=shown))
        return outcome

    async def _messages_opened(self, turn_id: int, message_ids: list[int]) -> None:
        """Best effort: an answer cut by a crash is marked interrupted in the messages saved here."""
        try:
            await self.repo.set_answer_messages(turn_id, message_ids, shown=False)
        except STORE_ERRORS as exc:
            log.warning("could not save an answer's messages; streaming on", turn=turn_id, error=repr(exc))

    async def _land(self, what: str, write: Callable[[], Awaitable[T]]) -> T | None:
        """A write that must not be lost: retried while the database is locked or full. Past the
        retry budget it is left to the next start (the answer's saved progress, its open hold)."""
        try:
            return await asyncio.shield(self.durability.write(what, write))
        except STORE_ERRORS as exc:
            log.error(f"could not {what}; the next start finishes it", error=repr(exc))
            return None

    async def _refuse(self, view: AnswerView, message: str) -> AnswerOutcome:
        outcome = refusal(message)
        self.metrics.answer_finished(outcome.status)
        await view.finish(outcome)
        return outcome
