"""Moderation and money through the local Discord and OpenRouter servers."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator

import pytest

from bot.chat.speakers import GROUP_NOTE
from tests.discord.conftest import Harness, start_conversation
from tests.fakes.discord import Interaction, Msg


@pytest.fixture
async def strict(harness: Harness) -> AsyncIterator[Harness]:
    """The operator allows only OpenAI models by default."""
    harness.overrides["default_allowed_models"] = ["openai/*"]
    await harness.start()
    yield harness


async def config(h: Harness, path: list[str], options: dict | None = None, user: int | None = None) -> Interaction:
    inter = await h.discord.slash("config", options or {}, subcommand=path, user_id=user or h.moderator,
                                  channel_id=h.discord.text_channel_id)
    await inter.wait_response()
    return inter


def said(inter: Interaction) -> str:
    data = inter.response_data or {}
    return json.dumps(data, ensure_ascii=False) if data.get("embeds") else str(data.get("content", ""))


async def test_config_is_for_server_managers_only(strict: Harness) -> None:
    d = strict.discord
    command = d.find_command("config")
    assert command is not None and int(command["default_member_permissions"]) == 32  # Manage Server
    with pytest.raises(PermissionError):
        await d.slash("config", {}, subcommand=["show"], user_id=strict.stranger, channel_id=d.text_channel_id)
    with pytest.raises(PermissionError):
        await d.slash("config", {}, subcommand=["show"], user_id=strict.moderator, guild=False)
    shown = await config(strict, ["show"])
    assert shown.ephemeral and "Configuration for this server" in said(shown) and "`openai/*`" in said(shown)


async def test_allowlist_default_model_and_audit(strict: Harness) -> None:
    d = strict.discord
    refused = await d.slash("chat", {"prompt": "hi", "model": "anthropic/claude-sonnet-4"}, user_id=strict.user,
                            channel_id=d.text_channel_id)
    await d.wait_for(lambda: refused.message is not None and "not allowed on this server" in refused.message.content)
    assert "`openai/*`" in refused.message.content  # type: ignore[union-attr]
    assert strict.openrouter.chat_requests() == []
    choices = await d.autocomplete("chat", {"prompt": "x", "model": "claude"}, "model", user_id=strict.user,
                                   channel_id=d.text_channel_id)
    assert choices == []  # autocomplete offers only allowed models

    assert "Allowed `anthropic/*`" in said(await config(strict, ["model", "allow"], {"model": "anthropic/*"}))
    assert "already allowed" in said(await config(strict, ["model", "allow"], {"model": "anthropic/*"}))
    assert "No model OpenRouter offers" in said(await config(strict, ["model", "allow"], {"model": "nobody/*"}))
    listed = said(await config(strict, ["model", "list"]))
    assert "`anthropic/*`" in listed and "`openai/*`" in listed and "this server's list" in listed
    choices = await d.autocomplete("chat", {"prompt": "x", "model": "claude"}, "model", user_id=strict.user,
                                   channel_id=d.text_channel_id)
    assert [c["value"] for c in choices] == ["anthropic/claude-sonnet-4"]

    default = await config(strict, ["model", "default"], {"model": "anthropic/claude-sonnet-4"})
    assert "now use `anthropic/claude-sonnet-4`" in said(default)
    await start_conversation(strict, "hello")
    assert strict.openrouter.chat_requests()[-1].json()["model"] == "anthropic/claude-sonnet-4"

    assert "Removed `openai/*`" in said(await config(strict, ["model", "remove"], {"model": "openai/*"}))
    # the operator's DEFAULT_MODEL came along with the operator's list; the rest of openai/* is gone
    assert "`openai/gpt-4o`" in said(await config(strict, ["model", "list"]))
    refused = await d.slash("chat", {"prompt": "hi", "model": "openai/gpt-4.1-mini"}, user_id=strict.user,
                            channel_id=d.text_channel_id)
    await d.wait_for(lambda: refused.message is not None and "not allowed" in refused.message.content)

    audit = said(await config(strict, ["audit"]))
    for action in ("model allow", "default model", "model remove"):
        assert action in audit
    assert f"<@{strict.moderator}>" in audit


async def test_auto_router_is_limited_to_the_allowed_models(strict: Harness) -> None:
    await start_conversation(strict, "pick for me", model="openrouter/auto")
    body = strict.openrouter.chat_requests()[-1].json()
    assert body["model"] == "openrouter/auto"
    assert body["plugins"] == [{"id": "auto-router", "allowed_models": ["openai/gpt-4o", "openai/*"]}]


async def test_system_prompt_and_provider_preferences_reach_the_request(strict: Harness) -> None:
    await config(strict, ["system-prompt"], {"prompt": "Answer like a pirate."})
    done = await config(strict, ["providers"], {"sort": "throughput", "deny_data_collection": True,
                                                "allow_fallbacks": False})
    assert "sort: throughput" in said(done)
    await start_conversation(strict, "hello")
    body = strict.openrouter.chat_requests()[-1].json()
    assert body["messages"][0] == {"role": "system", "content": f"Answer like a pirate.\n\n{GROUP_NOTE}"}
    # under a quota, the held prices (gpt-4o's, per million tokens) cap what any provider may bill
    cap = {"prompt": "2.5", "completion": "10", "request": "0", "image": "0"}
    assert body["provider"] == {"sort": "throughput", "data_collection": "deny", "allow_fallbacks": False,
                                "max_price": cap}
    shown = said(await config(strict, ["show"]))
    assert "pirate" in shown and "sort by throughput" in shown and "fallbacks forbidden" in shown


async def test_quotas_lower_max_tokens_refuse_clearly_and_show_in_usage(strict: Harness) -> None:
    d = strict.discord
    # $0.001: the hold counts the prompt at a token per byte, so $0.0005 no longer pays 32 answer tokens
    assert "now $0.0010" in said(await config(strict, ["quota", "server"], {"usd": 0.001}))
    thread_id, message = await start_conversation(strict, "hello")
    body = strict.openrouter.chat_requests()[-1].json()
    assert 16 <= body["max_tokens"] < 2048  # lowered to what $0.001 pays at gpt-4o prices
    assert "limited to" in message.content
    spent = await strict.query("SELECT spent_nusd, reserved_nusd FROM spend_totals WHERE user_id = 0")
    assert spent[0][0] > 0 and spent[0][1] == 0

    await config(strict, ["quota", "server"], {"usd": 0})
    await d.post_message(thread_id, "more please", user_id=strict.user)
    await d.wait_for(lambda: any("cannot spend anything" in m.content for m in strict.bot_messages(thread_id)))
    assert len(strict.openrouter.chat_requests()) == 1

    await config(strict, ["quota", "server"], {"usd": 20})
    assert "now $1.00" in said(await config(strict, ["quota", "member"], {"usd": 1}))
    mine = await d.slash("usage", {}, user_id=strict.user, channel_id=d.text_channel_id)
    await mine.wait_response()
    text = said(mine)
    assert "of $1.00" in text and "of $20.00" in text and "Limits reset on 1 " in text
    assert "Top members" not in text
    theirs = await d.slash("usage", {}, user_id=strict.moderator, channel_id=d.text_channel_id)
    await theirs.wait_response()
    assert "Top members" in said(theirs) and f"<@{strict.user}>" in said(theirs) and "openai/gpt-4o" in said(theirs)


async def test_credits_for_owners_only(strict: Harness) -> None:
    d = strict.discord
    denied = await d.slash("credits", {}, user_id=strict.user, channel_id=d.text_channel_id)
    await denied.wait_response()
    assert "Only the bot's owners" in said(denied)
    owner = await d.slash("credits", {}, user_id=d.owner_id, channel_id=d.text_channel_id)
    await d.wait_for(lambda: owner.message is not None and bool(owner.message.embeds))
    text = json.dumps(owner.message.embeds)  # type: ignore[union-attr]
    assert "$100.00" in text and "$74.50" in text and "$25.50" in text


async def chat_in(h: Harness, channel_id: int, prompt: str) -> Interaction:
    inter = await h.discord.slash("chat", {"prompt": prompt}, user_id=h.user, channel_id=channel_id)
    await inter.wait_response()
    return inter


async def test_a_channel_persona_and_model_apply_there_and_in_its_threads(strict: Harness) -> None:
    d = strict.discord
    pirates = d.add_text_channel("pirates")
    persona = await config(strict, ["channel", "persona"], {"prompt": "Talk like a pirate.", "channel": pirates})
    assert f"<#{pirates}> now start with this persona" in said(persona)
    refused = await config(strict, ["channel", "model"], {"model": "anthropic/claude-sonnet-4", "channel": pirates})
    assert "not allowed on this server" in said(refused)
    chosen = await config(strict, ["channel", "model"], {"model": "openai/gpt-4.1-mini", "channel": pirates})
    assert f"New conversations in <#{pirates}> now use `openai/gpt-4.1-mini`" in said(chosen)

    before = set(d.threads)
    await chat_in(strict, pirates, "Where is the treasure?")
    await d.wait_for(lambda: set(d.threads) - before != set(), timeout=20)
    [thread_id] = set(d.threads) - before
    body = strict.openrouter.chat_requests()[-1].json()
    assert body["model"] == "openai/gpt-4.1-mini"
    assert body["messages"][0]["content"].startswith("Talk like a pirate.")
    await d.post_message(thread_id, "And the map?", user_id=strict.user)  # the thread follows its channel
    await strict.wait_answer_done(thread_id)
    assert strict.openrouter.chat_requests()[-1].json()["messages"][0]["content"].startswith("Talk like a pirate.")

    await start_conversation(strict, "hello")  # elsewhere: the server's settings
    body = strict.openrouter.chat_requests()[-1].json()
    assert body["model"] == "openai/gpt-4o" and "pirate" not in body["messages"][0]["content"]

    shown = said(await config(strict, ["show"]))
    assert f"<#{pirates}>" in shown and "gpt-4.1-mini" in shown and "Talk like a pirate." in shown
    audit = said(await config(strict, ["audit"]))
    assert f"channel <#{pirates}> system prompt" in audit and f"channel <#{pirates}> default model" in audit
    cleared = await config(strict, ["channel", "persona"], {"channel": pirates})
    assert "the server's system prompt" in said(cleared)


async def test_a_channel_switched_off_answers_with_a_short_note(strict: Harness,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # the module the running bot loaded (discord.py loads an extension as a fresh module object)
    monkeypatch.setattr(sys.modules["bot.discord.cogs.chat"], "NOTE_SECONDS", 0.3)
    d = strict.discord

    def in_channel(channel_id: int) -> list[Msg]:  # what everyone sees there
        return [m for m in d.messages.values() if m.channel_id == channel_id and not m.ephemeral]

    thread_id, _ = await start_conversation(strict, "before")
    assert "now off in" in said(await config(strict, ["channel", "off"], {"off": True}))
    assert "already off" in said(await config(strict, ["channel", "off"], {"off": True}))
    asked = len(strict.openrouter.chat_requests())

    refused = await chat_in(strict, d.text_channel_id, "hello?")
    assert refused.ephemeral and "switched the bot off" in str(refused.response_data)
    await d.post_message(d.text_channel_id, "are you there?", user_id=strict.user, mentions_bot=True)
    await d.wait_for(lambda: any("switched the bot off" in m.content for m in in_channel(d.text_channel_id)))
    await d.post_message(thread_id, "and here?", user_id=strict.user)  # its threads too
    await d.wait_for(lambda: any("switched the bot off" in m.content for m in in_channel(thread_id)))
    # the notes go away by themselves
    await d.wait_for(lambda: not any("switched the bot off" in m.content and not m.deleted
                                     for m in in_channel(thread_id) + in_channel(d.text_channel_id)))
    assert len(strict.openrouter.chat_requests()) == asked  # nothing asked of a model

    assert "now on in" in said(await config(strict, ["channel", "off"], {"off": False}))
    await d.post_message(thread_id, "back?", user_id=strict.user)
    await strict.wait_answer_done(thread_id)
    assert len(strict.openrouter.chat_requests()) == asked + 1


async def test_search_with_sources_and_reasoning_through_discord(strict: Harness) -> None:
    d = strict.discord
    before = set(d.threads)
    inter = await d.slash("chat", {"prompt": "news about rust", "search": True}, user_id=strict.user,
                          channel_id=d.text_channel_id)
    await d.wait_for(lambda: inter.message is not None and "**Sources**" in inter.message.content
                     and "▌" not in inter.message.content, timeout=20)
    text = inter.message.content  # type: ignore[union-attr]
    assert "1. [Result 1: news about rust](<https://example.org/results/1?q=news%20about%20rust>)" in text
    assert not inter.message.embeds  # type: ignore[union-attr]  # the links do not unfurl
    await d.wait_for(lambda: set(d.threads) - before != set(), timeout=20)

    assert "Web search is now off" in said(await config(strict, ["search"], {"mode": "off"}))
    refused = await d.slash("chat", {"prompt": "more news", "search": True}, user_id=strict.user,
                            channel_id=d.text_channel_id)
    await d.wait_for(lambda: refused.message is not None and "Web search is turned off" in refused.message.content)

    await config(strict, ["model", "allow"], {"model": "anthropic/*"})
    assert "effort: high effort" in said(await config(strict, ["reasoning"], {"effort": "high", "hide": True}))
    await start_conversation(strict, "think hard", model="anthropic/claude-sonnet-4")
    assert strict.openrouter.chat_requests()[-1].json()["reasoning"] == {"effort": "high", "exclude": True}
    shown = said(await config(strict, ["show"]))
    assert "Web search" in shown and "high effort, left out" in shown
    audit = said(await config(strict, ["audit"]))
    assert "web search" in audit and "reasoning effort" in audit

    models = await d.slash("models", {"search": "claude"}, user_id=strict.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: models.message is not None and bool(models.message.embeds))
    listed = json.dumps(models.message.embeds, ensure_ascii=False)  # type: ignore[union-attr]
    assert "🧠 reasoning" in listed and "🔎 searches natively" in listed
