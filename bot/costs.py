"""Cost estimates from the models catalogue's prices: pure functions.

A model whose price is unknown or variable (`ModelInfo.priced` is False) has no estimate and can
afford nothing: its zero prices mean "unknown", never "free".
"""

from __future__ import annotations

from decimal import Decimal

from bot.openrouter.types import ModelInfo


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
