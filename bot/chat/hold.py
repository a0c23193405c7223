"""The second step of an answer: hold its worst-case cost against the budgets, or refuse.

A hold lowers `max_tokens` to what the budget can pay. A hold that nothing will settle (the answer
failed before its stream) is released: at zero when no request was sent, at the full amount when a
generation may have run, so nothing is ever under-counted.
"""

from __future__ import annotations

from decimal import Decimal

from bot.chat.context import worst_case_prompt
from bot.chat.plan import AnswerPlan
from bot.costs import web_search_tokens
from bot.quotas import Pricing, QuotaRefusal, QuotaService, Reservation
from bot.states import CostSource


class BudgetHolds:
    def __init__(self, quotas: QuotaService) -> None:
        self.quotas = quotas

    async def take(self, plan: AnswerPlan) -> Reservation | QuotaRefusal:
        """Hold the worst case: the dearest prices, the prompt counted a token per byte and PDFs by
        their pages (with the PDF parser's fee when a model that does not read PDFs may answer), a web
        search's fees and the results it brings. Reasoning tokens are output tokens: `max_tokens`
        bounds them with the answer, so the hold of `max_tokens` covers them."""
        prompt = worst_case_prompt(plan.context.messages)
        searching = plan.request_plan.web_search
        pricing = Pricing.worst_of(plan.candidates, plan.price_stand_ins, web_search=searching)
        return await self.quotas.reserve(
            guild_id=plan.conversation.guild_id, user_id=plan.payer,
            model=plan.request_plan.model, pricing=pricing,
            prompt_tokens=prompt.tokens + (web_search_tokens() if searching else 0), images=plan.images,
            max_tokens=plan.max_tokens, pdf_pages=prompt.pdf_pages)

    async def link(self, reservation: Reservation, turn_id: int) -> None:
        await self.quotas.link_turn(reservation, turn_id)

    async def release(self, reservation: Reservation, *, may_have_run: bool) -> None:
        """Settle a hold that nothing else will: the full amount if a generation may have run, else $0."""
        cost = None if may_have_run else Decimal(0)
        await self.quotas.settle(reservation.id, reservation.guild_id, cost, source=CostSource.RELEASED, model=None,
                                 fallback=reservation.amount)
