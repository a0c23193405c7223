"""Step four of an answer: its real cost (usage, else /generation, else the estimate) and the settlement."""

from __future__ import annotations

from decimal import Decimal

from bot.chat.settle import estimated_cost
from bot.openrouter.types import Completion, ModelInfo, Usage
from bot.states import CostSource
from tests.core_harness import CoreParts
from tests.fakes.openrouter_server import JSONReply

PRICED = ModelInfo(id="p/m", name="m", context_length=1000, max_completion_tokens=None,
                   prompt_price=Decimal("0.000001"), completion_price=Decimal("0.000002"), request_price=Decimal(0),
                   image_price=Decimal("0.001"), input_modalities=("text",), output_modalities=("text",),
                   supported_parameters=frozenset())


def test_the_estimate_prices_what_arrived() -> None:
    completion = Completion(generation_id="gen-1", content="abcdefg" * 10)  # 70 ASCII characters: 20 tokens
    assert estimated_cost(completion, PRICED, prompt_tokens=100, images=1) == (
        Decimal("0.000001") * 100 + Decimal("0.000002") * 20 + Decimal("0.001"), CostSource.ESTIMATE)


def test_nothing_generated_costs_nothing_and_an_unpriced_model_is_unknown() -> None:
    assert estimated_cost(Completion(), PRICED, prompt_tokens=100, images=0) == (Decimal(0), CostSource.ESTIMATE)
    assert estimated_cost(Completion(content="hi"), None, prompt_tokens=100, images=0) == (None, None)


async def test_usage_in_the_stream_wins(parts: CoreParts) -> None:
    settler = parts.core.conversations.pipeline.settler
    completion = Completion(generation_id="gen-x", content="hi", usage=Usage(cost=Decimal("0.0042")))
    assert await settler.cost_of(completion, PRICED, prompt_tokens=1, images=0) == (Decimal("0.0042"),
                                                                                  CostSource.USAGE)
    assert all("/generation" not in r.path for r in parts.fake.requests)


async def test_the_generation_endpoint_then_the_estimate(parts: CoreParts) -> None:
    settler = parts.core.conversations.pipeline.settler
    parts.fake.generations["gen-known"] = {"id": "gen-known", "total_cost": 0.0007}
    known = Completion(generation_id="gen-known", content="hi")
    assert await settler.cost_of(known, PRICED, prompt_tokens=1, images=0) == (Decimal("0.0007"),
                                                                             CostSource.GENERATION)
    parts.fake.script("generation", *[JSONReply(404, {"error": {"code": 404, "message": "Generation not found"}})] * 3)
    unknown = Completion(generation_id="gen-missing", content="hi")
    cost, source = await settler.cost_of(unknown, PRICED, prompt_tokens=1, images=0)
    assert source is CostSource.ESTIMATE and cost is not None and cost > 0
