"""Cost estimates from the models catalogue's prices: pure functions.

A model whose price is unknown or variable (`ModelInfo.priced` is False) has no estimate and can
afford nothing: its zero prices mean "unknown", never "free".
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from bot.openrouter.types import ModelInfo

# Web search through OpenRouter's `web` plugin. Models whose providers search natively (Anthropic, OpenAI,
# Perplexity, xAI) charge their catalogue's `pricing.web_search` per search, up to `max_uses` searches;
# the others search through Exa at $4 per 1,000 results (OpenRouter's documented rate). Either way the
# results reach the model as prompt tokens: held generously, a native search's pages run to thousands.
WEB_RESULTS = 5
WEB_MAX_USES = 2
EXA_PRICE_PER_RESULT = Decimal("0.004")
SEARCH_TOKENS_PER_RESULT = 3_000
SEARCH_TOKENS_PER_USE = 10_000


def web_search_fee(models: Sequence[ModelInfo]) -> Decimal | None:
    """The most a web search may add in fees when any of `models` answers; None when one of them has an
    unknown (`-1`) search price."""
    native = [m.web_search_price for m in models]
    if any(price is None for price in native):
        return None
    dearest = max((p for p in native if p is not None), default=Decimal(0))
    return max(EXA_PRICE_PER_RESULT * WEB_RESULTS, dearest * WEB_MAX_USES)


def web_search_tokens() -> int:
    """The most prompt tokens a web search's results may add."""
    return max(SEARCH_TOKENS_PER_RESULT * WEB_RESULTS, SEARCH_TOKENS_PER_USE * WEB_MAX_USES)


def estimate_cost(model: ModelInfo, *, prompt_tokens: int, completion_tokens: int, images: int = 0,
                  fees: Decimal = Decimal(0)) -> Decimal | None:
    """What a request costs at the catalogue's prices (USD), plus flat `fees`; None when the price is unknown."""
    if not model.priced:
        return None
    return (model.prompt_price * prompt_tokens + model.completion_price * completion_tokens
            + model.request_price + model.image_price * images + fees)


def affordable_completion_tokens(model: ModelInfo, budget: Decimal, *, prompt_tokens: int, images: int = 0,
                                 fees: Decimal = Decimal(0)) -> int:
    """The most completion tokens `budget` can pay for after the prompt; 0 when not even the prompt fits
    or the price is unknown; unlimited for a model that is truly free."""
    fixed = estimate_cost(model, prompt_tokens=prompt_tokens, completion_tokens=0, images=images, fees=fees)
    if fixed is None:
        return 0
    left = budget - fixed
    if left < 0:
        return 0
    if model.completion_price <= 0:
        return 1 << 30
    return int(left / model.completion_price)
