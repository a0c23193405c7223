from __future__ import annotations

from pathlib import Path

import pytest

from bot.openrouter.catalogue import ModelCatalogue
from bot.openrouter.types import ModelInfo
from bot.policy import (
    AUTO_MODEL,
    GuildPolicy,
    Refusal,
    RequestPlan,
    allowed_among,
    is_pattern,
    model_allowed,
    reasoning_choice,
    search_choice,
    split_variant,
    valid_pattern,
    variant_allowed,
)
from bot.states import Effort, SearchMode
from bot.store.guilds import GuildRepo, GuildSettings
from bot.store.sqlite import SqliteDatabase
from tests.conftest import fixture_json

MODELS = [ModelInfo.from_wire(m) for m in fixture_json("models-sample.json")["data"]] + [
    ModelInfo.from_wire({"id": "meta-llama/llama-3.3-70b-instruct:free", "context_length": 8000,
                         "pricing": {"prompt": "0", "completion": "0"}}),
]


@pytest.mark.parametrize(("model", "patterns", "allowed"), [
    ("anthropic/claude-sonnet-4", ["anthropic/*"], True),
    ("anthropic/claude-sonnet-4", ["openai/*"], False),
    ("meta-llama/llama-3.3-70b-instruct:free", ["*:free"], True),
    ("openai/gpt-4o", ["*:free"], False),
    ("openai/gpt-4o", ["openai/gpt-4o"], True),
    ("openai/gpt-4o-mini", ["openai/gpt-4o"], False),  # an exact id is not a prefix
    ("openai/gpt-4o-mini", ["openai/gpt-4o*"], True),
    ("OpenAI/gpt-4o", ["openai/*"], False),  # ids are case-sensitive
])
def test_patterns(model: str, patterns: list[str], allowed: bool) -> None:
    assert model_allowed(model, patterns) is allowed


def test_pattern_validation() -> None:
    assert valid_pattern("anthropic/*") and valid_pattern("*:free") and valid_pattern("openai/gpt-4.1-mini")
    assert not valid_pattern("rm -rf") and not valid_pattern("") and not valid_pattern("a" * 300)
    assert is_pattern("x/*") and not is_pattern("x/y")
    assert [m.id for m in allowed_among(MODELS, ["*:free"])] == ["meta-llama/llama-3.3-70b-instruct:free"]


@pytest.fixture
async def policy(tmp_path: Path):
    db = SqliteDatabase(tmp_path / "p.sqlite3")
    await db.open()
    await db.migrate()

    async def fetch() -> list[ModelInfo]:
        return MODELS

    catalogue = ModelCatalogue(fetch)
    guilds = GuildRepo(db)
    yield GuildPolicy(guilds=guilds, catalogue=catalogue, operator_patterns=["openai/*"],
                      operator_default_model="openai/gpt-4o", fallback_models=["anthropic/claude-sonnet-4",
                                                                                "openai/gpt-4.1-mini"],
                      max_answer_tokens=1000)
    await db.close()


async def test_operator_list_until_the_server_has_its_own(policy: GuildPolicy) -> None:
    assert await policy.patterns(1) == ["openai/*"]
    assert await policy.is_allowed(1, "openai/gpt-4o") and not await policy.is_allowed(1, "anthropic/claude-sonnet-4")
    await policy.guilds.add_pattern(1, "anthropic/*", actor_id=9, seed=policy.operator_patterns)
    assert await policy.patterns(1) == ["anthropic/*", "openai/*"]  # starts from the operator's list
    await policy.guilds.remove_pattern(1, "openai/*", actor_id=9, seed=policy.operator_patterns)
    assert await policy.patterns(1) == ["anthropic/*"]
    assert await policy.patterns(2) == ["openai/*"]  # other servers untouched
    audit = await policy.guilds.audit(1)
    assert [(a.action, a.old_value, a.new_value, a.actor_id) for a in audit] == [
        ("model remove", "openai/*", None, 9), ("model allow", None, "anthropic/*", 9)]


async def test_plan_refuses_disallowed_models_and_filters_fallbacks(policy: GuildPolicy) -> None:
    refused = await policy.plan(1, "anthropic/claude-sonnet-4")
    assert isinstance(refused, Refusal) and "not allowed on this server" in refused.message
    assert "`openai/*`" in refused.message
    decided = await policy.plan(1, "openai/gpt-4o")
    assert not isinstance(decided, Refusal)
    plan, candidates = decided
    assert isinstance(plan, RequestPlan)
    assert plan.fallback_models == ("openai/gpt-4.1-mini",)  # the anthropic fallback is not allowed here
    assert [c.id for c in candidates] == ["openai/gpt-4o", "openai/gpt-4.1-mini"]


async def test_auto_router_is_constrained_to_the_allowlist(policy: GuildPolicy) -> None:
    decided = await policy.plan(1, AUTO_MODEL)
    assert not isinstance(decided, Refusal)
    plan, candidates = decided
    assert plan.plugins == ({"id": "auto-router", "allowed_models": ["openai/*"]},)
    assert {c.id for c in candidates} == {"openai/gpt-4o", "openai/gpt-4.1-mini", "openai/gpt-3.5-turbo"}
    await policy.guilds.add_pattern(3, "nothing/*", actor_id=1, seed=[])
    assert isinstance(await policy.plan(3, AUTO_MODEL), Refusal)


async def test_server_settings_shape_the_plan(policy: GuildPolicy) -> None:
    g = policy.guilds
    await g.set_setting(1, "provider_sort", "price", actor_id=1, action="provider sort", old_text=None,
                        new_text="price")
    await g.set_setting(1, "deny_data_collection", 1, actor_id=1, action="deny", old_text=None, new_text="True")
    await g.set_setting(1, "allow_fallbacks", 0, actor_id=1, action="fallbacks", old_text=None, new_text="False")
    await g.set_setting(1, "system_prompt", "Be a pirate.", actor_id=1, action="system prompt", old_text=None,
                        new_text="Be a pirate.")
    decided = await policy.plan(1, "openai/gpt-4o")
    assert not isinstance(decided, Refusal)
    plan, _ = decided
    assert plan.provider is not None
    assert plan.provider.to_body() == {"sort": "price", "data_collection": "deny", "allow_fallbacks": False}
    assert plan.fallback_models == () and plan.system_prompt == "Be a pirate."
    with pytest.raises(ValueError):
        await g.set_setting(1, "guild_id; DROP TABLE x", 1, actor_id=1, action="x", old_text=None, new_text=None)


@pytest.mark.parametrize(("model", "patterns", "allowed"), [
    ("openai/gpt-4o:online", ["openai/*"], True),  # a routing variant of an allowed model
    ("openai/gpt-4o:nitro", ["openai/gpt-4o"], True),
    ("openai/gpt-4o:floor", ["openai/gpt-4o"], True),
    ("anthropic/claude-sonnet-4:online", ["openai/*"], False),  # the base model is not allowed
    ("openai/gpt-4o:extended", ["openai/gpt-4o"], False),  # not a routing variant
    ("openai/gpt-4o:online", ["openai/gpt-4o:online"], True),  # allowed as written
])
def test_routing_variants_follow_their_base_model(model: str, patterns: list[str], allowed: bool) -> None:
    assert variant_allowed(model, patterns) is allowed


def test_split_variant() -> None:
    assert split_variant("openai/gpt-4o:online") == ("openai/gpt-4o", ":online")
    assert split_variant("meta-llama/llama-3.3-70b-instruct:free") == ("meta-llama/llama-3.3-70b-instruct:free", "")
    assert split_variant(":online") == (":online", "")


@pytest.mark.parametrize(("mode", "asked", "online", "expected"), [
    (SearchMode.ON_REQUEST, None, False, False),
    (SearchMode.ON_REQUEST, True, False, True),
    (SearchMode.ON_REQUEST, None, True, True),
    (SearchMode.ALWAYS, None, False, True),
    (SearchMode.ALWAYS, False, False, False),  # a member may ask without
    (SearchMode.ALWAYS, False, True, True),  # but an :online model searches
    (SearchMode.OFF, None, False, False),
    (SearchMode.OFF, True, False, None),
    (SearchMode.OFF, None, True, None),
])
def test_search_choice(mode: SearchMode, asked: bool | None, online: bool, expected: bool | None) -> None:
    chosen = search_choice(mode, asked, online)
    assert isinstance(chosen, Refusal) if expected is None else chosen is expected


def test_reasoning_choice() -> None:
    sonnet, gpt4o = MODELS[0], MODELS[2]
    assert sonnet.reasons and not gpt4o.reasons
    plain, strict = GuildSettings(1), GuildSettings(1, reasoning_effort="medium", reasoning_excluded=True)
    assert reasoning_choice(plain, None, sonnet) is None
    assert reasoning_choice(plain, Effort.HIGH, sonnet) == {"effort": "high"}
    assert reasoning_choice(strict, None, sonnet) == {"effort": "medium", "exclude": True}
    assert reasoning_choice(strict, Effort.LOW, sonnet) == {"effort": "low", "exclude": True}
    assert reasoning_choice(strict, None, gpt4o) is None  # the server's default skips models without it
    assert isinstance(reasoning_choice(plain, Effort.LOW, gpt4o), Refusal)  # asked for: said why not
    assert reasoning_choice(plain, Effort.LOW, None) == {"effort": "low"}  # the auto router gets what was asked
