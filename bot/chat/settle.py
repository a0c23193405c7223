"""The fourth step of an answer: find what it really cost, and settle its hold to that.

The cost comes from the stream's `usage.cost`, else OpenRouter's `/generation` endpoint, else an
estimate from the catalogue's prices and the counted text; a try that OpenRouter answered and that
failed before its first token (then retried) adds what `/generation` says it billed. An answer
stopped or failed before its first token still has a generation id (from the response's
`X-Generation-Id`) and is looked up like any other; only an answer whose request never got a
response is $0.
"""

from __future__ import annotations

from decimal import Decimal

from bot.chat.context import estimate_text_tokens
from bot.costs import estimate_cost, web_search_fee, web_search_tokens
from bot.logs import get_logger
from bot.openrouter.client import OpenRouterClient
from bot.openrouter.errors import OpenRouterError
from bot.openrouter.types import Completion, ModelInfo
from bot.quotas import PDF_PARSER_FEE_PER_PAGE, QuotaService, Reservation
from bot.states import CostSource

log = get_logger(__name__)
Cost = tuple[Decimal | None, CostSource | None]


def estimated_cost(completion: Completion, model: ModelInfo | None, *, prompt_tokens: int, images: int,
                   searched: bool = False, pdf_pages: int = 0) -> Cost:
    """The catalogue's price of what arrived (with the most a web search may have cost, when it
    searched, and the PDF parser's fee for a model that does not read PDFs itself); $0 when no
    generation is known at all; unknown without a price (no model, or one whose price, or search
    price, is unknown or variable)."""
    if model is None:
        return None, None
    if not completion.generation_id and not completion.content and not completion.reasoning:
        return Decimal(0), CostSource.ESTIMATE  # nothing was generated, nothing is billed
    fees = web_search_fee([model]) if searched else Decimal(0)
    if fees is None:
        return None, None
    if not model.reads_files:
        fees += PDF_PARSER_FEE_PER_PAGE * pdf_pages
    out_tokens = estimate_text_tokens(completion.content) + estimate_text_tokens(completion.reasoning)
    return estimate_cost(model, prompt_tokens=prompt_tokens + (web_search_tokens() if searched else 0),
                         completion_tokens=out_tokens, images=images, fees=fees), CostSource.ESTIMATE


class CostSettler:
    EARLIER_TRY_LOOKUPS = 2  # `/generation` lookups of a try retried before its first token

    def __init__(self, *, quotas: QuotaService, client: OpenRouterClient, lookup_attempts: int,
                 lookup_delay: float) -> None:
        self.quotas = quotas
        self.client = client
        self.lookup_attempts = lookup_attempts
        self.lookup_delay = lookup_delay

    async def generation_cost(self, generation_id: str, *, attempts: int | None = None) -> Decimal | None:
        """The billed cost from `/generation`, or None when OpenRouter cannot tell (yet)."""
        try:
            stats = await self.client.get_generation(generation_id, attempts=attempts or self.lookup_attempts,
                                                     delay=self.lookup_delay)
        except OpenRouterError as exc:
            log.info("generation stats unavailable", generation_id=generation_id, error=repr(exc))
            return None
        return stats.total_cost

    async def cost_of(self, completion: Completion, model: ModelInfo | None, *, prompt_tokens: int,
                      images: int, searched: bool = False, pdf_pages: int = 0) -> Cost:
        """The answer's cost, with what the tries retried before its first token were billed."""
        cost, source = await self._cost_of_last_try(completion, model, prompt_tokens=prompt_tokens, images=images,
                                                    searched=searched, pdf_pages=pdf_pages)
        if cost is not None and completion.earlier_generations:
            cost += await self.earlier_tries_cost(completion.earlier_generations)
        return cost, source

    async def _cost_of_last_try(self, completion: Completion, model: ModelInfo | None, *, prompt_tokens: int,
                                images: int, searched: bool, pdf_pages: int) -> Cost:
        if completion.usage is not None and completion.usage.cost is not None:
            return completion.usage.cost, CostSource.USAGE
        if completion.generation_id:
            cost = await self.generation_cost(completion.generation_id)
            if cost is not None:
                return cost, CostSource.GENERATION
        return estimated_cost(completion, model, prompt_tokens=prompt_tokens, images=images, searched=searched,
                              pdf_pages=pdf_pages)

    async def earlier_tries_cost(self, generation_ids: list[str]) -> Decimal:
        """What OpenRouter billed for tries that failed before their first token (usually nothing: a
        generation it does not know of cost nothing)."""
        total = Decimal(0)
        for generation_id in generation_ids:
            cost = await self.generation_cost(generation_id, attempts=self.EARLIER_TRY_LOOKUPS)
            if cost:
                log.info("a try retried before its first token was billed", generation_id=generation_id,
                         cost=str(cost))
                total += cost
        return total

    async def settle(self, reservation: Reservation, cost: Decimal | None, source: CostSource | None,
                     model: str | None) -> list[str]:
        """Settle the hold (to the held amount when the cost is unknown); return quota warnings."""
        _, warnings = await self.quotas.settle(reservation.id, reservation.guild_id, cost,
                                               source=source or CostSource.ESTIMATE, model=model,
                                               fallback=reservation.amount)
        return warnings
