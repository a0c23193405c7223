"""Step one of an answer: the plan (policy, context window, vision check), with the real catalogue
from the local OpenRouter server and a real SQLite file."""

from __future__ import annotations

from decimal import Decimal

from bot.chat.plan import AnswerPlan, answer_cap, context_window, pseudonymous_user, sees_images
from bot.chat.speakers import GROUP_NOTE
from bot.openrouter.types import ModelInfo
from bot.policy import Planned, Refusal, RequestPlan
from bot.states import AttachmentKind
from bot.store.conversations import StoredAttachment
from tests.chat.test_context import PNG as PNG_BYTES
from tests.core_harness import CoreParts, conversation_with_question


def model(model_id: str, *, context: int = 0, max_out: int | None = None, vision: bool = False) -> ModelInfo:
    return ModelInfo(id=model_id, name=model_id, context_length=context, max_completion_tokens=max_out,
                     prompt_price=Decimal(0), completion_price=Decimal(0), request_price=Decimal(0),
                     image_price=Decimal(0), input_modalities=("text", "image") if vision else ("text",),
                     output_modalities=("text",), supported_parameters=frozenset())


def test_the_answer_cap_is_the_smaller_of_the_server_and_the_model() -> None:
    planned = Planned(RequestPlan(model="a/b", max_tokens=2048), [model("a/b", max_out=1000)])
    assert answer_cap(planned, planned.candidates[0]) == 1000
    assert answer_cap(planned, None) == 2048
    assert answer_cap(planned, model("a/b")) == 2048


def test_the_context_window_is_the_smallest_among_the_candidates() -> None:
    assert context_window([model("a", context=128_000), model("b", context=16_000), model("c")]) == 16_000
    assert context_window([model("unknown")]) == 32_000


def test_images_need_the_model_or_for_the_auto_router_any_candidate_to_see() -> None:
    auto = Planned(RequestPlan(model="openrouter/auto", max_tokens=10), [model("a"), model("b", vision=True)])
    assert sees_images(auto, None) and not sees_images(auto, auto.candidates[0])


def test_the_user_id_sent_to_openrouter_is_stable_and_reveals_nothing() -> None:
    assert pseudonymous_user(1234) == pseudonymous_user(1234) != pseudonymous_user(1235)
    assert "1234" not in (pseudonymous_user(1234) or "") and pseudonymous_user(None) is None


async def test_a_plan_carries_the_request_but_its_max_tokens(parts: CoreParts) -> None:
    conversation, question = await conversation_with_question(parts, "What is Rust?")
    plan = await parts.core.conversations.pipeline.planner.plan(conversation, question)
    assert isinstance(plan, AnswerPlan)
    assert plan.model is not None and plan.model.id == "openai/gpt-4o" and plan.max_tokens == 500
    body = plan.request(123).to_body()
    assert body["max_tokens"] == 123 and body["model"] == "openai/gpt-4o"
    assert body["messages"] == [{"role": "system", "content": f"Be brief.\n\n{GROUP_NOTE}"},
                                {"role": "user", "content": "What is Rust?"}]
    assert body["session_id"] == f"conversation-{conversation.id}" and body["user"] == pseudonymous_user(3)


async def test_a_disallowed_model_is_refused_with_the_allowed_list(parts: CoreParts) -> None:
    conversation, question = await conversation_with_question(parts, model="anthropic/claude-sonnet-4")
    refused = await parts.core.conversations.pipeline.planner.plan(conversation, question)
    assert isinstance(refused, Refusal) and "`openai/*`" in refused.message


async def test_an_image_for_a_blind_model_is_refused_naming_models_that_see(parts: CoreParts) -> None:
    image = StoredAttachment("cat.png", "image/png", AttachmentKind.IMAGE, len(PNG_BYTES), data=PNG_BYTES)
    conversation, question = await conversation_with_question(parts, "What is this?", model="openai/gpt-3.5-turbo",
                                                              attachments=(image,))
    refused = await parts.core.conversations.pipeline.planner.plan(conversation, question)
    assert isinstance(refused, Refusal) and "cannot see images" in refused.message
    assert "`openai/gpt-4o`" in refused.message and "anthropic" not in refused.message  # allowed ones only


async def test_trimming_is_told_once_per_conversation(parts: CoreParts) -> None:
    planner = parts.core.conversations.pipeline.planner
    conversation, _ = await conversation_with_question(parts, "x" * 60_000, model="openai/gpt-3.5-turbo")
    question = await parts.repo.add_user_turn(conversation.id, author_id=3, content="and now?", message_id=None,
                                              channel_id=2)
    first = await planner.plan(conversation, question)
    assert isinstance(first, AnswerPlan) and len(first.notices) == 1 and "no longer fit" in first.notices[0]
    assert first.context.dropped_turns == 1
    again = await planner.plan(await parts.repo.get(conversation.id) or conversation, question)
    assert isinstance(again, AnswerPlan) and again.notices == () and again.context.dropped_turns == 1
