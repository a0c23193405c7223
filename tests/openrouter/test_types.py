"""The JSON recordings (models, key, generation) parse into the typed wire objects exactly."""

from __future__ import annotations

from decimal import Decimal

from bot.openrouter.types import (
    ChatRequest,
    GenerationStats,
    KeyInfo,
    ModelInfo,
    ProviderPreferences,
    Usage,
    to_decimal,
)
from tests.conftest import FIXTURES, fixture_json


def test_every_json_recording_is_covered_by_a_test() -> None:
    covered = {
        "chat-completion-nonstream.json", "error-400-context-length.json", "error-401.json",
        "error-402-insufficient-credits.json", "error-402-with-metadata.json", "error-403-guardrail-docs-example.json",
        "error-429-free-models-per-min.json", "error-429-upstream-provider.json", "generation-partial-capture.json",
        "generation-sample-docs.json", "key-sample-docs.json", "models-sample.json",
    }
    assert {p.name for p in FIXTURES.glob("*.json")} == covered


def test_models_catalogue_prices_are_exact() -> None:
    models = [ModelInfo.from_wire(raw) for raw in fixture_json("models-sample.json")["data"]]
    by_id = {m.id: m for m in models}
    mini = by_id["openai/gpt-4.1-mini"]
    assert mini.prompt_price == Decimal("0.0000004") and mini.completion_price == Decimal("0.0000016")
    assert mini.request_price == 0 and mini.image_price == 0  # zero prices are absent in 2026 recordings
    assert mini.context_length == 1047576 and mini.max_completion_tokens == 32768
    assert mini.vision and "file" in mini.input_modalities and "response_format" in mini.supported_parameters
    turbo = by_id["openai/gpt-3.5-turbo"]
    assert turbo.input_modalities == ("text",) and not turbo.vision and turbo.prompt_price > 0


def test_pricing_tiers_raise_the_worst_case_but_not_the_shown_price() -> None:
    from bot.quotas import Pricing

    models = {m["id"]: ModelInfo.from_wire(m) for m in fixture_json("models-sample.json")["data"]}
    sonnet = models["anthropic/claude-sonnet-4"]  # dearer past 200k prompt tokens
    assert sonnet.prompt_price == Decimal("0.000003") and sonnet.worst_prompt_price == Decimal("0.000006")
    assert sonnet.worst_completion_price == Decimal("0.0000225")
    mini = models["openai/gpt-4.1-mini"]
    assert mini.worst_prompt_price == mini.prompt_price and mini.prompt_price_ceiling is None
    worst = Pricing.worst_of([mini, sonnet])
    assert (worst.prompt, worst.completion) == (Decimal("0.000006"), Decimal("0.0000225"))


def test_variable_router_prices_are_not_negative() -> None:
    auto = ModelInfo.from_wire({"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}})
    assert auto.prompt_price == 0 and auto.completion_price == 0 and auto.context_length == 0
    assert not auto.priced  # zero here means unknown, never free


def test_unknown_prices_are_told_apart_from_free_ones() -> None:
    def priced(pricing: object) -> bool:
        return ModelInfo.from_wire({"id": "a/b", **({"pricing": pricing} if pricing is not None else {})}).priced

    assert priced({"prompt": "0", "completion": "0"})  # truly free
    assert priced({"prompt": "0.000001", "completion": "0.000002"})  # request and image absent: 0
    assert not priced(None) and not priced({}) and not priced({"prompt": "0.000001"})
    assert not priced({"prompt": "n/a", "completion": "0"}) and not priced({"prompt": "NaN", "completion": "0"})
    assert not priced({"prompt": "0", "completion": "0", "request": "-1"})
    assert not priced({"prompt": "0.1", "completion": "0.1", "overrides": [{"prompt": "-1"}]})
    models = [ModelInfo.from_wire(raw) for raw in fixture_json("models-sample.json")["data"]]
    assert all(m.priced for m in models)


def test_a_price_cap_is_sent_in_openrouter_units_and_matches_the_schema() -> None:
    from bot.openrouter.types import MaxPrice
    from tests.openrouter.conftest import assert_valid_chat_request

    cap = MaxPrice(prompt=Decimal("0.0000025") * 1_000_000, completion=Decimal("0.00001") * 1_000_000,
                   request=Decimal("0.005"), image=Decimal(0))
    body = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}],
                       provider=ProviderPreferences(sort="throughput", max_price=cap)).to_body()
    assert body["provider"] == {"sort": "throughput", "max_price": {"prompt": "2.5", "completion": "10",
                                                                    "request": "0.005", "image": "0"}}
    assert_valid_chat_request(body)


def test_key_info() -> None:
    key = KeyInfo.from_wire(fixture_json("key-sample-docs.json"))
    assert (key.limit, key.usage, key.limit_remaining) == (Decimal(100), Decimal("25.5"), Decimal("74.5"))
    assert key.limit_reset == "monthly" and not key.is_free_tier
    unlimited = KeyInfo.from_wire({"data": {"label": "x", "limit": None, "usage": 0.5}})
    assert unlimited.limit is None and unlimited.usage == Decimal("0.5")


def test_generation_stats_documented_and_captured() -> None:
    docs = GenerationStats.from_wire(fixture_json("generation-sample-docs.json"))
    assert docs.id == "gen-3bhGkxlo4XFrqiabUM7NDtwDzWwG" and docs.total_cost == Decimal("0.0015")
    assert (docs.model, docs.provider, docs.prompt_tokens, docs.completion_tokens) == (
        "sao10k/l3-stheno-8b", "Infermatic", 10, 25)
    partial = GenerationStats.from_wire(fixture_json("generation-partial-capture.json"))
    assert partial.total_cost == Decimal("0.0001402") and partial.provider == "Google AI Studio"
    assert partial.model is None and partial.prompt_tokens is None


def test_cost_floats_become_their_exact_decimal_text() -> None:
    assert to_decimal(0.0001025) == Decimal("0.0001025")
    assert to_decimal("0.000003") == Decimal("0.000003")
    assert to_decimal(None) is None and to_decimal("n/a") is None
    assert to_decimal("NaN") is None and to_decimal(float("nan")) is None and to_decimal("-Infinity") is None
    assert to_decimal(True) is None
    assert Usage.from_wire({"cost": "NaN"}).cost is None and Usage.from_wire({"cost": -1}).cost is None
    assert GenerationStats.from_wire({"data": {"id": "g", "total_cost": "oops"}}).total_cost is None
    usage = Usage.from_wire({"prompt_tokens": 1, "completion_tokens": 2, "cost": 0})
    assert usage.cost == 0 and usage.total_tokens == 0


def test_request_body_omits_what_is_unset() -> None:
    body = ChatRequest(model="m/x", messages=[{"role": "user", "content": "hi"}],
                       provider=ProviderPreferences()).to_body()
    assert body == {"model": "m/x", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                    "usage": {"include": True}}
