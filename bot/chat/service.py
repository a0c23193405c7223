"""Conversations as the bot runs them: store the question, stream the answer, store the answer.

This is the core of the chat feature and knows nothing of discord.py. The Discord layer gives it an
`AnswerView` to show an answer in, and asks it to `stop()` one (the Stop button) or all (shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

import structlog

from bot.chat.attachments import AttachmentLimits, Rejected
from bot.chat.context import build_context, count_images, estimate_text_tokens
from bot.chat.costs import estimate_cost
from bot.logs import get_logger
from bot.money import from_nusd, to_nusd
from bot.openrouter.catalogue import ModelCatalogue
from bot.openrouter.client import OpenRouterClient, RetryNotice
from bot.openrouter.errors import OpenRouterError
from bot.openrouter.types import ChatRequest, Completion, ModelInfo, ProviderPreferences
from bot.quotas import Pricing, QuotaRefusal, QuotaService, Reservation
from bot.store.conversations import AnswerRecord, Conversation, ConversationRepo, StoredAttachment, Turn

log = get_logger(__name__)

AUTO_MODEL = "openrouter/auto"
UNKNOWN_CONTEXT = 32_000


class AnswerView(Protocol):
    """How the Discord layer shows one answer. `append` must not block: rendering is paced apart."""

    async def begin(self) -> None:
        """Called when this answer's turn comes: show that it started (e.g. post a placeholder)."""

    def message_ids(self) -> list[int]: ...

    def append(self, content: str, reasoning: str) -> None: ...

    async def notice(self, text: str) -> None: ...

    async def finish(self, outcome: AnswerOutcome) -> None: ...


@dataclass(slots=True)
class AnswerOutcome:
    status: str  # complete, stopped, error, interrupted, refused
    content: str = ""
    reasoning: str = ""
    model: str | None = None
    provider: str | None = None
    tokens: int | None = None
    cost: Decimal | None = None
    cost_source: str | None = None  # usage, generation, estimate
    finish_reason: str | None = None
    error_message: str | None = None
    stopped_by: int | None = None
    turn_id: int | None = None


@dataclass(frozen=True, slots=True)
class ChatConfig:
    system_prompt: str | None
    attachment_limits: AttachmentLimits = field(default_factory=AttachmentLimits)
    generation_lookup_attempts: int = 3
    generation_lookup_delay: float = 0.5
    progress_save_interval: float = 3.0


@dataclass(slots=True)
class ActiveAnswer:
    turn_id: int
    asker_id: int | None
    task: asyncio.Task[None] | None = None
    stopped_by: int | None = None
    cancelled_from_outside: bool = False
    view: AnswerView | None = None


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """Per-request choices made by policy (the moderation layer): what may be asked, and how."""

    model: str
    max_tokens: int
    fallback_models: tuple[str, ...] = ()
    provider: ProviderPreferences | None = None
    system_prompt: str | None = None
    plugins: tuple[dict[str, object], ...] = ()


class Refused(Protocol):
    @property
    def message(self) -> str: ...


class Policy(Protocol):
    """Decides, per server, which model may answer and how (see bot.moderation.GuildPolicy)."""

    async def plan(self, guild_id: int | None, model_id: str) -> tuple[RequestPlan, list[ModelInfo]] | Refused: ...

    async def allowed_models(self, guild_id: int | None) -> list[ModelInfo]: ...


def pseudonymous_user(user_id: int | None) -> str | None:
    """A stable id for OpenRouter's abuse isolation that does not reveal the Discord id."""
    if user_id is None:
        return None
    return "discord-" + hashlib.sha256(f"discord-user:{user_id}".encode()).hexdigest()[:24]


class ChatService:
    def __init__(self, *, repo: ConversationRepo, client: OpenRouterClient, catalogue: ModelCatalogue,
                 config: ChatConfig, policy: Policy, budget: QuotaService) -> None:
        self.repo = repo
        self.client = client
        self.catalogue = catalogue
        self.config = config
        self.policy = policy
        self.budget = budget
        self.active: dict[int, ActiveAnswer] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    # -- conversations ----------------------------------------------------------------------------

    async def start_conversation(self, *, guild_id: int | None, channel_id: int, owner_id: int, model: str,
                                 title: str, thread_id: int | None = None) -> Conversation:
        conversation = await self.repo.create(guild_id=guild_id, channel_id=channel_id, owner_id=owner_id,
                                              model=model, title=title, thread_id=thread_id)
        log.info("conversation started", conversation=conversation.id, model=model)
        return conversation

    async def add_user_turn(self, conversation: Conversation, *, author_id: int, content: str,
                            message_id: int | None, channel_id: int | None,
                            attachments: Sequence[StoredAttachment] = ()) -> Turn:
        """Store a question at once, before it waits for its turn: nothing said is ever lost."""
        return await self.repo.add_user_turn(conversation.id, author_id=author_id, content=content,
                                             message_id=message_id, channel_id=channel_id, attachments=attachments)

    def lock_for(self, conversation_id: int) -> asyncio.Lock:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        return lock

    def busy(self, conversation_id: int) -> bool:
        lock = self._locks.get(conversation_id)
        return lock is not None and lock.locked()

    async def model_info(self, model_id: str) -> ModelInfo | None:
        await self.catalogue.ensure_loaded()
        return self.catalogue.get(model_id)

    async def vision_suggestions(self, among: Sequence[str] | None = None, limit: int = 5) -> list[str]:
        await self.catalogue.ensure_loaded()
        return [m.id for m in self.catalogue.vision_models(limit=limit, among=among)]

    # -- answering --------------------------------------------------------------------------------

    async def answer(self, conversation: Conversation, question: Turn, view: AnswerView) -> AnswerOutcome:
        """Answer `question` in `conversation`, one answer at a time per conversation."""
        async with self.lock_for(conversation.id):
            fresh = await self.repo.get(conversation.id) or conversation  # /model may have switched it
            with structlog.contextvars.bound_contextvars(conversation=conversation.id, model=fresh.model):
                return await self._answer_locked(fresh, question, view)

    async def _decide(self, conversation: Conversation) -> tuple[RequestPlan, list[ModelInfo]] | str:
        """The request plan and every model it may end up on, or why there is no answer."""
        try:
            decided = await self.policy.plan(conversation.guild_id, conversation.model)
        except OpenRouterError as exc:
            return f"The models list is unavailable right now: {exc.user_message}"
        if isinstance(decided, tuple):
            return decided
        return decided.message

    async def _answer_locked(self, conversation: Conversation, question: Turn, view: AnswerView) -> AnswerOutcome:
        decided = await self._decide(conversation)
        if isinstance(decided, str):
            return await self._refuse(view, decided)
        plan, candidates = decided
        info = candidates[0] if candidates and plan.model != AUTO_MODEL else None
        history = await self.repo.history(conversation.id,
                                          image_data_for_last=self.config.attachment_limits.images_resent)
        current = next((t for t in history if t.id == question.id), question)
        has_images = any(a.kind == "image" for a in current.attachments)
        if has_images and candidates and not (info.vision if info else any(c.vision for c in candidates)):
            suggestions = await self.vision_suggestions(
                among=[m.id for m in await self.policy.allowed_models(conversation.guild_id)])
            names = ", ".join(f"`{m}`" for m in suggestions) or "one that accepts images"
            return await self._refuse(
                view, f"`{plan.model}` cannot see images. Switch this conversation to a model that can with "
                      f"`/model`, for example {names}, then ask again.")
        context_lengths = [c.context_length for c in candidates if c.context_length]
        context_length = min(context_lengths) if context_lengths else UNKNOWN_CONTEXT
        max_tokens = plan.max_tokens
        if info and info.max_completion_tokens:
            max_tokens = min(max_tokens, info.max_completion_tokens)
        built = build_context(plan.system_prompt if plan.system_prompt is not None else self.config.system_prompt,
                              history, current, context_length=context_length, reserve_for_answer=max_tokens)
        if built.dropped_turns and not conversation.trim_notified:
            await self.repo.mark_trim_notified(conversation.id)
            await view.notice(f"The oldest {built.dropped_turns} message(s) of this conversation no longer fit "
                              f"the model's context window, so the model no longer sees them.")
        images = count_images(built.messages)
        if not candidates:
            return await self._refuse(view, "The models list is unavailable, so the cost of an answer cannot "
                                            "be checked against this server's budget. Try again shortly.")
        reservation = await self.budget.reserve(
            guild_id=conversation.guild_id, user_id=question.author_id or 0, model=plan.model,
            pricing=Pricing.worst_of(candidates), prompt_tokens=built.prompt_tokens, images=images,
            max_tokens=max_tokens)
        if isinstance(reservation, QuotaRefusal):
            return await self._refuse(view, reservation.message)
        max_tokens = reservation.max_tokens
        if reservation.lowered:
            await view.notice(f"The answer is limited to {max_tokens:,} tokens by what is left of the budget.")
        request = ChatRequest(
            model=plan.model,
            messages=built.messages,
            models=[m for m in plan.fallback_models if m != plan.model] or None,
            provider=plan.provider,
            plugins=list(plan.plugins) or None,
            max_tokens=max_tokens,
            user=pseudonymous_user(question.author_id),
            session_id=f"conversation-{conversation.id}",
        )
        try:
            await view.begin()
            turn_id = await self.repo.start_answer(conversation.id, reply_to=question.id, model=plan.model,
                                                   message_ids=view.message_ids(),
                                                   channel_id=question.discord_channel_id)
            await self.budget.link_turn(reservation, turn_id)
        except BaseException:
            await self._release(reservation)
            raise
        active = ActiveAnswer(turn_id, question.author_id, view=view)
        self.active[turn_id] = active
        self._idle.clear()
        try:
            outcome = await self._stream_and_record(
                conversation, request, view, active, info=info, prompt_tokens=built.prompt_tokens,
                images=images, planned_model=plan.model, reservation=reservation)
        finally:
            self.active.pop(turn_id, None)
            if not self.active:
                self._idle.set()
        if active.cancelled_from_outside:
            raise asyncio.CancelledError
        return outcome

    async def _stream_and_record(self, conversation: Conversation, request: ChatRequest, view: AnswerView,
                                 active: ActiveAnswer, *, info: ModelInfo | None, prompt_tokens: int, images: int,
                                 planned_model: str, reservation: Reservation) -> AnswerOutcome:
        """Stream, settle the cost, store the answer, then show its final form."""
        turn_id = active.turn_id
        try:
            completion, error, status = await self._stream(request, view, active)
            cost, source = await self._settle_cost(completion, info, prompt_tokens, images)
        except BaseException:
            await self._release(reservation, generation_unknown=True)
            raise
        _, warnings = await asyncio.shield(self.budget.settle(
            reservation.id, reservation.guild_id, cost, source=source or "estimate", model=completion.model,
            fallback=reservation.amount))
        for warning in warnings:
            await view.notice(warning)
        usage = completion.usage
        record = AnswerRecord(
            content=completion.content, status=status, reasoning=completion.reasoning or None,
            error=f"{error.kind}: {error.detail}" if error else None,
            model=completion.model, provider=completion.provider, generation_id=completion.generation_id,
            finish_reason=completion.finish_reason, native_finish_reason=completion.native_finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            reasoning_tokens=usage.reasoning_tokens if usage else None,
            cost_nusd=to_nusd(cost) if cost is not None else None,
        )
        await self.repo.finish_answer(turn_id, record)
        outcome = AnswerOutcome(
            status=status, content=completion.content, reasoning=completion.reasoning,
            model=completion.model or planned_model, provider=completion.provider,
            tokens=usage.total_tokens if usage else None, cost=cost, cost_source=source,
            finish_reason=completion.finish_reason, error_message=error.user_message if error else None,
            stopped_by=active.stopped_by, turn_id=turn_id,
        )
        log.info("answer finished", conversation=conversation.id, turn=turn_id, status=status,
                 generation_id=completion.generation_id, model=outcome.model, cost=str(cost), cost_source=source)
        try:
            await view.finish(outcome)
        finally:
            await self.repo.set_answer_messages(turn_id, view.message_ids())
        return outcome

    async def _release(self, reservation: Reservation, *, generation_unknown: bool = False) -> None:
        """Settle a hold when something unexpected ended the request: at the full held amount if a
        generation may have run (nothing is under-counted), else at zero."""
        cost = None if generation_unknown else Decimal(0)
        await asyncio.shield(self.budget.settle(reservation.id, reservation.guild_id, cost, source="released",
                                                model=None, fallback=reservation.amount))

    async def _refuse(self, view: AnswerView, message: str) -> AnswerOutcome:
        await view.begin()
        outcome = AnswerOutcome(status="refused", error_message=message)
        await view.finish(outcome)
        return outcome

    async def _stream(self, request: ChatRequest, view: AnswerView,
                      active: ActiveAnswer) -> tuple[Completion, OpenRouterError | None, str]:
        async def on_retry(notice: RetryNotice) -> None:
            await view.notice(f"⏳ {notice.error.user_message} Retrying in {max(1, round(notice.delay))} s…")

        stream = self.client.stream_chat(request, on_retry=on_retry)

        loop = asyncio.get_running_loop()

        async def consume() -> None:
            saved_at = loop.time()
            async with stream:
                async for delta in stream:
                    view.append(delta.content, delta.reasoning)
                    if loop.time() - saved_at >= self.config.progress_save_interval:
                        # a crash now still leaves most of the answer in the store
                        saved_at = loop.time()
                        snapshot = stream.completion
                        await self.repo.save_progress(active.turn_id, snapshot.content, snapshot.generation_id)

        task = active.task = asyncio.create_task(consume(), name=f"answer-{active.turn_id}")
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            # The caller itself is being cancelled: stop the stream, keep what arrived, and let the
            # caller store it before the cancellation goes on (see `_answer_locked`).
            active.cancelled_from_outside = True
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            return stream.completion, None, "interrupted"
        if task.cancelled():
            return stream.completion, None, "stopped"
        exc = task.exception()
        if exc is None:
            return stream.completion, None, "complete"
        if isinstance(exc, OpenRouterError):
            return exc.partial or stream.completion, exc, "error"
        raise exc

    def find_active(self, message_id: int) -> ActiveAnswer | None:
        """The streaming answer shown in this Discord message, if any."""
        return next((a for a in self.active.values() if a.view is not None and message_id in a.view.message_ids()),
                    None)

    def stop(self, turn_id: int, *, by: int | None) -> bool:
        """Stop one streaming answer (the Stop button). The partial answer is kept."""
        active = self.active.get(turn_id)
        if active is None or active.task is None or active.task.done():
            return False
        active.stopped_by = by
        active.task.cancel()
        return True

    async def shutdown(self, grace: float = 3.0) -> None:
        """Let answers finish for `grace` seconds, then stop the rest (kept, marked stopped)."""
        if self.active:
            log.info("waiting for answers to finish", count=len(self.active), grace=grace)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        for turn_id in list(self.active):
            self.stop(turn_id, by=None)  # stopped by nobody: the bot is shutting down
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), 5)

    async def _settle_cost(self, completion: Completion, info: ModelInfo | None, prompt_tokens: int,
                           images: int) -> tuple[Decimal | None, str | None]:
        """The real cost: the stream's usage, else the generation endpoint, else an estimate."""
        if completion.usage is not None and completion.usage.cost is not None:
            return completion.usage.cost, "usage"
        if completion.generation_id:
            try:
                stats = await self.client.get_generation(
                    completion.generation_id, attempts=self.config.generation_lookup_attempts,
                    delay=self.config.generation_lookup_delay)
                return stats.total_cost, "generation"
            except OpenRouterError as exc:
                log.info("generation stats unavailable; estimating the cost", generation_id=completion.generation_id,
                         error=repr(exc))
        if info is None:
            return None, None
        if not completion.generation_id and not completion.content and not completion.reasoning:
            return Decimal(0), "estimate"  # nothing was generated, nothing is billed
        out_tokens = estimate_text_tokens(completion.content) + estimate_text_tokens(completion.reasoning)
        return estimate_cost(info, prompt_tokens=prompt_tokens, completion_tokens=out_tokens, images=images), "estimate"

    async def recover_interrupted(self) -> list[Turn]:
        """Answers cut by a crash: mark them interrupted (keeping their text); return them."""
        turns = await self.repo.streaming_turns()
        for turn in turns:
            await self.repo.finish_answer(turn.id, AnswerRecord(
                content=turn.content, status="interrupted", model=turn.model, generation_id=turn.generation_id,
                error="interrupted: the bot stopped while this answer was streaming"))
        if turns:
            log.warning("marked interrupted answers", count=len(turns))
        return turns

    async def settle_orphans(self) -> int:
        """Holds left open by a crash: settle each to the real cost when it can be found (the turn's
        recorded cost, else the generation endpoint), else to the full held amount."""
        orphans = await self.budget.open_reservations()
        for held in orphans:
            turn = await self.repo.get_turn(held.turn_id) if held.turn_id else None
            cost: Decimal | None = None
            source = "reserved"
            if turn is not None and turn.cost_nusd is not None:
                cost, source = from_nusd(turn.cost_nusd), "turn"
            elif turn is not None and turn.generation_id:
                try:
                    stats = await self.client.get_generation(turn.generation_id, attempts=2,
                                                             delay=self.config.generation_lookup_delay)
                    cost, source = stats.total_cost, "generation"
                    await self.repo.set_cost(turn.id, to_nusd(cost))
                except OpenRouterError as exc:
                    log.info("no generation stats for an orphaned hold", reservation=held.id, error=repr(exc))
            await self.budget.settle(held.id, held.guild_id, cost, source=source, model=turn.model if turn else None,
                                     fallback=from_nusd(held.amount_nusd))
            log.warning("settled a hold left by a crash", reservation=held.id, source=source)
        return len(orphans)


__all__ = ["AnswerOutcome", "AnswerView", "ChatConfig", "ChatService", "Rejected", "RequestPlan"]
