"""Web search with sources and reasoning effort, through the real core and the fake OpenRouter."""

from __future__ import annotations

from decimal import Decimal

from bot.costs import EXA_PRICE_PER_RESULT, WEB_RESULTS, web_search_fee, web_search_tokens
from bot.money import from_nusd
from bot.openrouter.types import ModelInfo
from bot.policy import PLAIN_QUESTION, AskOptions, Refusal
from bot.states import Effort, SearchMode
from tests.core_harness import CoreParts, RecordingView
from tests.openrouter.conftest import assert_valid_chat_request

GUILD, MOD = 1, 42


async def ask(parts: CoreParts, text: str = "What happened today?", *, model: str = "openai/gpt-4o",
              options: AskOptions = PLAIN_QUESTION) -> RecordingView:
    conversations = parts.core.conversations
    conv = await conversations.start(guild_id=GUILD, channel_id=2, owner_id=3, model=model, title="t")
    view = RecordingView()
    await conversations.ask(conv, author_id=3, content=text, message_id=None, channel_id=2, attachments=(),
                            view=view, options=options)
    return view


async def holds(parts: CoreParts) -> list[tuple[int, int | None]]:
    rows = await parts.db.fetchall("SELECT amount_nusd, settled_nusd FROM reservations ORDER BY id")
    return [(r[0], r[1]) for r in rows]


async def test_a_search_cites_its_sources_and_its_fees_are_held_and_settled(parts: CoreParts) -> None:
    plain = await ask(parts, "What happened today?")
    searched = await ask(parts, "What happened today?", options=AskOptions(search=True))
    body = parts.fake.chat_requests()[-1].json()
    assert_valid_chat_request(body)
    assert {"id": "web", "max_results": WEB_RESULTS, "max_uses": 2} in body["plugins"]
    assert searched.outcome is not None and plain.outcome is not None
    assert [url for url, _ in searched.outcome.sources] == [
        f"https://example.org/results/{n}?q=What%20happened%20today%3F" for n in range(1, WEB_RESULTS + 1)]
    assert plain.outcome.sources == []
    [(plain_hold, plain_cost), (search_hold, search_cost)] = await holds(parts)
    fees = EXA_PRICE_PER_RESULT * WEB_RESULTS
    gpt4o = parts.core.models.catalogue.get("openai/gpt-4o")
    assert gpt4o is not None
    # the hold grew by the search's fees and the prompt tokens its results may bring
    assert from_nusd(search_hold - plain_hold) == fees + gpt4o.prompt_price * web_search_tokens()
    assert search_cost is not None and plain_cost is not None and from_nusd(search_cost - plain_cost) >= fees
    assert search_cost <= search_hold
    [stored] = await parts.db.fetchall("SELECT sources FROM turns WHERE sources IS NOT NULL")
    assert "https://example.org/results/1" in stored[0]


async def test_the_servers_search_setting_decides_and_an_online_model_searches(parts: CoreParts) -> None:
    config = parts.core.server_config
    await config.set_web_search(GUILD, SearchMode.ALWAYS, actor=MOD)
    await ask(parts)
    assert any(p.get("id") == "web" for p in parts.fake.chat_requests()[-1].json()["plugins"])
    await ask(parts, options=AskOptions(search=False))  # a member may ask without
    assert "plugins" not in parts.fake.chat_requests()[-1].json()

    await config.set_web_search(GUILD, SearchMode.ON_REQUEST, actor=MOD)
    await ask(parts, model="openai/gpt-4o:online")  # allowed because openai/gpt-4o is; becomes the plugin
    body = parts.fake.chat_requests()[-1].json()
    assert body["model"] == "openai/gpt-4o" and any(p.get("id") == "web" for p in body["plugins"])

    await config.set_web_search(GUILD, SearchMode.OFF, actor=MOD)
    asked = len(parts.fake.chat_requests())
    refused = await ask(parts, options=AskOptions(search=True))
    online = await ask(parts, model="openai/gpt-4o:online")
    for view in (refused, online):
        assert view.outcome is not None and "Web search is turned off" in (view.outcome.error_message or "")
    assert len(parts.fake.chat_requests()) == asked


async def test_routing_variants_only_of_allowed_models(parts: CoreParts) -> None:
    policy = parts.core.models
    assert await policy.check_model(GUILD, "openai/gpt-4o:nitro") == "openai/gpt-4o:nitro"
    assert isinstance(await policy.check_model(GUILD, "anthropic/claude-sonnet-4:floor"), Refusal)  # not allowed
    assert isinstance(await policy.check_model(GUILD, "openai/gpt-9:online"), Refusal)  # no such model
    await ask(parts, model="openai/gpt-4o:floor")
    assert parts.fake.chat_requests()[-1].json()["model"] == "openai/gpt-4o:floor"


async def test_reasoning_effort_on_models_that_take_it(parts: CoreParts) -> None:
    await parts.core.server_config.allow_model(GUILD, "anthropic/*", actor=MOD)
    await ask(parts, model="anthropic/claude-sonnet-4", options=AskOptions(effort=Effort.HIGH))
    body = parts.fake.chat_requests()[-1].json()
    assert_valid_chat_request(body)
    # reasoning tokens are output tokens: max_tokens bounds them, and the hold is max_tokens' worth
    assert body["reasoning"] == {"effort": "high"} and body["max_tokens"] == 500
    [(hold, _)] = await holds(parts)
    sonnet = parts.core.models.catalogue.get("anthropic/claude-sonnet-4")
    assert sonnet is not None and from_nusd(hold) >= 500 * sonnet.worst_completion_price

    refused = await ask(parts, model="openai/gpt-4o", options=AskOptions(effort=Effort.LOW))
    assert refused.outcome is not None and "does not take a reasoning effort" in (refused.outcome.error_message or "")

    await parts.core.server_config.set_reasoning(GUILD, actor=MOD, effort=Effort.LOW, excluded=True)
    await ask(parts, model="anthropic/claude-sonnet-4")
    assert parts.fake.chat_requests()[-1].json()["reasoning"] == {"effort": "low", "exclude": True}
    await ask(parts, model="openai/gpt-4o")  # the server's default is not sent to a model that cannot take it
    assert "reasoning" not in parts.fake.chat_requests()[-1].json()


async def test_an_unknown_search_price_is_never_free(parts: CoreParts) -> None:
    model = parts.fake.models[1] | {"pricing": parts.fake.models[1]["pricing"] | {"web_search": "-1"}}
    info = ModelInfo.from_wire(model)
    assert info.web_search_price is None and web_search_fee([info]) is None
    native = ModelInfo.from_wire(parts.fake.models[0])
    assert web_search_fee([native]) == max(Decimal("0.02"), Decimal("0.01") * 2)
    parts.fake.models[1] = model  # openai/gpt-4.1-mini: its search price becomes variable
    await parts.core.models.catalogue.refresh()
    refused = await ask(parts, model="openai/gpt-4.1-mini", options=AskOptions(search=True))
    assert refused.outcome is not None and "fixed price" in (refused.outcome.error_message or "")
    assert await holds(parts) == []  # refused before anything was held or asked
    assert parts.fake.chat_requests() == []
