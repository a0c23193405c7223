"""Cost estimates from the models catalogue's prices: pure functions."""

from __future__ import annotations

from decimal import Decimal

from bot.openrouter.types import ModelInfo


def estimate_cost(model: ModelInfo, *, prompt_tokens: int, completion_tokens: int, images: int = 0) -> Decimal:
    """What a request costs at the catalogue's prices (USD)."""
    return (model.prompt_price * prompt_tokens + model.completion_price * completion_tokens
            + model.request_price + model.image_price * images)


def affordable_completion_tokens(model: ModelInfo, budget: Decimal, *, prompt_tokens: int, images: int = 0) -> int:
    """The most completion tokens `budget` can pay for after the prompt; 0 when not even the prompt fits."""
    fixed = estimate_cost(model, prompt_tokens=prompt_tokens, completion_tokens=0, images=images)
    left = budget - fixed
    if left < 0:
        return 0
    if model.completion_price <= 0:
        return 1 << 30
    return int(left / model.completion_price)
