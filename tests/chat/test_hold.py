"""Step two of an answer: the hold on the budgets, and its release when nothing will settle it."""

from __future__ import annotations

from bot.chat.plan import AnswerPlan
from bot.quotas import QuotaRefusal, Reservation
from bot.server_config import QuotaScope
from tests.core_harness import CoreParts, conversation_with_question


async def plan_for(parts: CoreParts) -> AnswerPlan:
    conversation, question = await conversation_with_question(parts)
    plan = await parts.core.conversations.pipeline.planner.plan(conversation, question)
    assert isinstance(plan, AnswerPlan)
    return plan


async def open_holds(parts: CoreParts) -> list[tuple[object, ...]]:
    rows = await parts.db.fetchall("SELECT amount_nusd, settled_nusd, settled_from FROM reservations ORDER BY id")
    return [tuple(r) for r in rows]


async def test_a_hold_is_the_worst_case_of_the_plan(parts: CoreParts) -> None:
    holds = parts.core.conversations.pipeline.holds
    hold = await holds.take(await plan_for(parts))
    assert isinstance(hold, Reservation) and hold.max_tokens == 500 and not hold.lowered
    # gpt-4o: $2.50 / $10 per million; 500 answer tokens alone are $0.005
    assert hold.amount > 500 * parts.core.models.catalogue.get("openai/gpt-4o").completion_price  # type: ignore[union-attr]
    assert await open_holds(parts) == [(hold.amount * 10**9, None, None)]


async def test_a_small_budget_lowers_max_tokens_and_an_empty_one_refuses(parts: CoreParts) -> None:
    holds, config = parts.core.conversations.pipeline.holds, parts.core.server_config
    from decimal import Decimal

    await config.set_quota(1, QuotaScope.MEMBER, Decimal("0.002"), actor=9)
    hold = await holds.take(await plan_for(parts))
    assert isinstance(hold, Reservation) and hold.lowered and 32 <= hold.max_tokens < 500
    await config.set_quota(1, QuotaScope.MEMBER, Decimal(0), actor=9)
    refused = await holds.take(await plan_for(parts))
    assert isinstance(refused, QuotaRefusal) and "cannot spend anything" in refused.message


async def test_release_is_free_before_a_request_and_full_after_one(parts: CoreParts) -> None:
    holds = parts.core.conversations.pipeline.holds
    before = await holds.take(await plan_for(parts))
    after = await holds.take(await plan_for(parts))
    assert isinstance(before, Reservation) and isinstance(after, Reservation)
    await holds.release(before, may_have_run=False)
    await holds.release(after, may_have_run=True)
    assert await open_holds(parts) == [(before.amount * 10**9, 0, "released"),
                                       (after.amount * 10**9, after.amount * 10**9, "reserved")]
