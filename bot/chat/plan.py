"""The first step of an answer: what to ask, of which models, with which context, or why not.

Policy (is the model allowed, fallbacks, provider preferences), the conversation's history trimmed
to the smallest context window among the candidate models, and the vision check.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from bot.chat.context import BuiltContext, build_context, count_images
from bot.openrouter.errors import OpenRouterError
from bot.openrouter.types import ChatRequest, MaxPrice, ModelInfo, ProviderPreferences
from bot.policy import AUTO_MODEL, PLAIN_QUESTION, AskOptions, GuildPolicy, Planned, Refusal, RequestPlan
from bot.states import AttachmentKind
from bot.store.conversations import Conversation, ConversationRepo, Turn

UNKNOWN_CONTEXT = 32_000


def pseudonymous_user(user_id: int | None) -> str | None:
    """A stable id for OpenRouter's abuse isolation that does not reveal the Discord id."""
    if user_id is None:
        return None
    return "discord-" + hashlib.sha256(f"discord-user:{user_id}".encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class AnswerPlan:
    """Everything decided before money is held: the request but for its final `max_tokens`."""

    conversation: Conversation
    question: Turn
    request_plan: RequestPlan
    candidates: list[ModelInfo]  # every model the request may end up on
    model: ModelInfo | None  # the asked model, when it is one model (not the auto router)
    context: BuiltContext
    max_tokens: int  # before the budget has its say
    notices: tuple[str, ...] = ()
    # the allowed models, when a candidate's price is unknown: the hold takes the dearest of them
    price_stand_ins: tuple[ModelInfo, ...] = ()
    billed_to: int | None = None  # whose budget pays, when not the asker's (a moderator's Regenerate)

    @property
    def payer(self) -> int:
        return self.billed_to or self.question.author_id or 0

    @property
    def images(self) -> int:
        return count_images(self.context.messages)

    def request(self, max_tokens: int, max_price: MaxPrice | None = None) -> ChatRequest:
        """The request, with the budget's `max_tokens` and, when a quota applies, the prices held as
        `provider.max_price` (no provider may bill above the hold)."""
        plan = self.request_plan
        provider = plan.provider
        if max_price is not None:
            provider = dataclasses.replace(provider or ProviderPreferences(), max_price=max_price)
        return ChatRequest(
            model=plan.model,
            messages=self.context.messages,
            models=[m for m in plan.fallback_models if m != plan.model] or None,
            provider=provider,
            plugins=list(plan.plugins) or None,
            reasoning=plan.reasoning,
            max_tokens=max_tokens,
            user=pseudonymous_user(self.question.author_id),
            session_id=f"conversation-{self.conversation.id}",
        )


def answer_cap(planned: Planned, model: ModelInfo | None) -> int:
    """The most tokens an answer may have: the server's cap, lowered to the model's own limit."""
    max_tokens = planned.plan.max_tokens
    if model and model.max_completion_tokens:
        max_tokens = min(max_tokens, model.max_completion_tokens)
    return max_tokens


def context_window(candidates: list[ModelInfo]) -> int:
    """The smallest context window among the models a request may end up on."""
    lengths = [c.context_length for c in candidates if c.context_length]
    return min(lengths) if lengths else UNKNOWN_CONTEXT


def sees_images(planned: Planned, model: ModelInfo | None) -> bool:
    return model.vision if model else any(c.vision for c in planned.candidates)


class AnswerPlanner:
    def __init__(self, *, repo: ConversationRepo, policy: GuildPolicy, system_prompt: str | None,
                 images_resent: int) -> None:
        self.repo = repo
        self.policy = policy
        self.system_prompt = system_prompt
        self.images_resent = images_resent

    async def plan(self, conversation: Conversation, question: Turn,
                   options: AskOptions = PLAIN_QUESTION) -> AnswerPlan | Refusal:
        try:
            planned = await self.policy.plan(conversation.guild_id, conversation.model, conversation.home_channel_id,
                                             options)
        except OpenRouterError as exc:
            return Refusal(f"The models list is unavailable right now: {exc.user_message}")
        if isinstance(planned, Refusal):
            return planned
        model = planned.candidates[0] if planned.candidates and planned.plan.model != AUTO_MODEL else None
        history = await self.repo.history(conversation.id, image_data_for_last=self.images_resent)
        current = next((t for t in history if t.id == question.id), question)
        if any(a.kind == AttachmentKind.IMAGE for a in current.attachments) and not sees_images(planned, model):
            return await self._vision_refusal(conversation, planned.plan.model)
        max_tokens = answer_cap(planned, model)
        system = planned.plan.system_prompt if planned.plan.system_prompt is not None else self.system_prompt
        built = build_context(system, history, current, context_length=context_window(planned.candidates),
                              reserve_for_answer=max_tokens, group=conversation.guild_id is not None)
        notices: tuple[str, ...] = ()
        if built.dropped_turns and not conversation.trim_notified:
            await self.repo.mark_trim_notified(conversation.id)
            notices = (f"The oldest {built.dropped_turns} message(s) of this conversation no longer fit the "
                       f"model's context window, so the model no longer sees them.",)
        stand_ins = () if all(c.priced for c in planned.candidates) else \
            tuple(await self.policy.allowed_models(conversation.guild_id))
        return AnswerPlan(conversation, current, planned.plan, planned.candidates, model, built, max_tokens, notices,
                          stand_ins, options.billed_to)

    async def _vision_refusal(self, conversation: Conversation, model_id: str) -> Refusal:
        suggestions = await self.policy.vision_suggestions(conversation.guild_id)
        names = ", ".join(f"`{m}`" for m in suggestions) or "one that accepts images"
        return Refusal(f"`{model_id}` cannot see images. Switch this conversation to a model that can with "
                       f"`/model`, for example {names}, then ask again.")
