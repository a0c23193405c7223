"""Prometheus' endpoint end to end: the real bot against local Discord and OpenRouter servers, scraped
over HTTP as Prometheus would."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.money import from_nusd
from bot.runner import MetricsUnavailable, run
from tests.conftest import fixture_bytes
from tests.discord.conftest import Harness, start_conversation
from tests.fakes.openrouter_server import JSONReply

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def scrape_once_settled(port: int, within: float = 10) -> Samples:
    """A scrape taken once the last answer has left the streaming gauge: the error shows in Discord a
    moment before the pipeline records its outcome and lets the answer go."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        samples = await scrape(port)
        settled = sample(samples, "bot_answers_streaming") == 0 and sample(samples, "bot_answers_total",
                                                                           status="error") is not None
        if settled or asyncio.get_running_loop().time() > deadline:
            return samples
        await asyncio.sleep(0.02)


async def test_a_scrape_shows_answers_tokens_errors_latencies_and_spend(harness: Harness, unused_tcp_port: int) -> None:
    port = harness.overrides["metrics_port"] = unused_tcp_port
    await harness.start()
    d = harness.discord
    before = await scrape(port)
    assert sample(before, "bot_answers_streaming") == 0
    assert sample(before, "bot_discord_invalid_requests") == 0
    assert sample(before, "bot_answers_total", status="complete") is None

    thread_id, _ = await start_conversation(harness)  # /chat: streamed, settled, a thread opened
    harness.openrouter.script("chat", JSONReply(402, fixture_bytes("error-402-with-metadata.json")))
    await d.post_message(thread_id, "And Go?", user_id=harness.user)
    await d.wait_for(lambda: any("out of credits" in m.content for m in harness.bot_messages(thread_id)), timeout=15)

    after = await scrape_once_settled(port)
    [(prompt, completion, cost)] = await harness.query(
        "SELECT prompt_tokens, completion_tokens, cost_nusd FROM turns WHERE status = 'complete' AND role = 'assistant'"
    )
    assert sample(after, "bot_answers_streaming") == 0
    assert sample(after, "bot_answers_total", status="complete") == 1
    assert sample(after, "bot_answers_total", status="error") == 1
    assert sample(after, "bot_tokens_total", kind="prompt") == prompt > 0
    assert sample(after, "bot_tokens_total", kind="completion") == completion > 0
    assert sample(after, "bot_openrouter_errors_total", kind="InsufficientCredits") == 1
    assert sample(after, "bot_spend_usd_total", guild=str(d.guild_id)) == pytest.approx(float(from_nusd(cost)))
    assert float(from_nusd(cost)) > 0
    assert sample(after, "bot_first_token_seconds_count") == 1
    assert sample(after, "bot_first_visible_words_seconds_count") == 1
    assert 0 < sample(after, "bot_first_visible_words_seconds_sum") < 15  # type: ignore[operator]
    assert sample(after, "bot_first_visible_words_seconds_bucket", le="+Inf") == 1
    assert sample(after, "bot_discord_invalid_requests") == 0

    assert await harness.stop() == 0
    with pytest.raises(aiohttp.ClientConnectionError):  # closed with the bot
        await scrape(port)


async def test_a_metrics_port_already_taken_stops_the_start(harness: Harness, unused_tcp_port: int) -> None:
    harness.overrides |= {"metrics_port": unused_tcp_port, "metrics_host": "127.0.0.1"}
    taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", unused_tcp_port)
    try:
        with pytest.raises(MetricsUnavailable, match=f"cannot serve metrics on 127.0.0.1:{unused_tcp_port}"):
            await run(harness.settings())
    finally:
        taken.close()
        await taken.wait_closed()
    assert harness.discord.identify_payloads == []  # it never went on to join Discord
