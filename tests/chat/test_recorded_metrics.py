"""What the core records in the process's metrics, answering through `Core.build` against the local
OpenRouter server and a real SQLite file."""

from __future__ import annotations

import asyncio

from bot.money import from_nusd
from tests.conftest import fixture_bytes
from tests.core_harness import CoreParts, RecordingView
from tests.fakes.openrouter_server import JSONReply


def value(parts: CoreParts, name: str, **labels: str) -> float | None:
    return parts.core.metrics.registry.get_sample_value(name, labels)


async def ask(parts: CoreParts, *, model: str = "openai/gpt-4o", guild_id: int | None = 1,
              view: RecordingView | None = None) -> RecordingView:
    conversations = parts.core.conversations
    conv = await conversations.start(guild_id=guild_id, channel_id=2, owner_id=3, model=model, title="t")
    view = view or RecordingView()
    await conversations.ask(conv, author_id=3, content="Hello there", message_id=None, channel_id=2, attachments=(),
                            view=view)
    return view


async def test_a_complete_answer_counts_its_status_tokens_spend_and_first_token(parts: CoreParts) -> None:
    view = await ask(parts, guild_id=42)
    assert view.outcome is not None and view.outcome.status == "complete"
    [(prompt, completion, cost)] = [tuple(r) for r in await parts.db.fetchall(
        "SELECT prompt_tokens, completion_tokens, cost_nusd FROM turns WHERE role = 'assistant'")]
    assert value(parts, "bot_answers_total", status="complete") == 1
    assert value(parts, "bot_tokens_total", kind="prompt") == prompt > 0
    assert value(parts, "bot_tokens_total", kind="completion") == completion > 0
    assert value(parts, "bot_spend_usd_total", guild="42") == float(from_nusd(cost)) > 0
    assert value(parts, "bot_first_token_seconds_count") == 1
    assert value(parts, "bot_answers_streaming") == 0


async def test_direct_messages_spend_under_one_label(parts: CoreParts) -> None:
    view = await ask(parts, guild_id=None)
    assert view.outcome is not None and view.outcome.cost
    assert value(parts, "bot_spend_usd_total", guild="dm") == float(view.outcome.cost)


async def test_answers_in_progress_go_up_then_back_to_zero(parts: CoreParts) -> None:
    parts.fake.tokens_per_second = 40
    parts.fake.reply_text = "word " * 30
    view = RecordingView()
    task = asyncio.create_task(ask(parts, view=view))
    await view.wait_for_pieces(1)
    assert value(parts, "bot_answers_streaming") == 1
    await task
    assert view.outcome is not None and view.outcome.status == "complete"
    assert value(parts, "bot_answers_streaming") == 0


async def test_a_retried_rate_limit_is_an_error_of_its_kind_and_the_answer_completes(parts: CoreParts) -> None:
    parts.fake.script("chat", JSONReply(429, fixture_bytes("error-429-upstream-provider.json"), {"Retry-After": "0"}))
    view = await ask(parts)
    assert view.outcome is not None and view.outcome.status == "complete"
    assert value(parts, "bot_openrouter_errors_total", kind="RateLimited") == 1
    assert value(parts, "bot_answers_total", status="complete") == 1
    assert value(parts, "bot_answers_total", status="error") is None


async def test_a_failed_answer_counts_its_error_and_refusals_count_too(parts: CoreParts) -> None:
    parts.fake.script("chat", JSONReply(402, fixture_bytes("error-402-with-metadata.json")))
    failed = await ask(parts)
    refused = await ask(parts, model="acme/not-allowed")
    assert failed.outcome is not None and failed.outcome.status == "error"
    assert refused.outcome is not None and refused.outcome.status == "refused"
    assert value(parts, "bot_openrouter_errors_total", kind="InsufficientCredits") == 1
    assert value(parts, "bot_answers_total", status="error") == 1
    assert value(parts, "bot_answers_total", status="refused") == 1
    assert value(parts, "bot_first_token_seconds_count") == 0
