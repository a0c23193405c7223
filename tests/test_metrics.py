"""The metrics object: what each recording call moves, what is read at scrape time, and its HTTP endpoint."""

from __future__ import annotations

import asyncio
import os
import sys
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.discord.limits import INVALID_WINDOW, DiscordLimits
from bot.discord.pacing import ChannelPacer
from bot.metrics import LATENCY_BUCKETS, Metrics
from bot.metrics_http import MetricsEndpoint
from bot.openrouter.types import Usage

ROOT = Path(__file__).resolve().parents[1]


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_answers_by_status_and_their_tokens() -> None:
    metrics = Metrics()
    metrics.answer_finished("complete", Usage(prompt_tokens=12, completion_tokens=30, total_tokens=42))
    metrics.answer_finished("complete", Usage(prompt_tokens=8, completion_tokens=5, total_tokens=13))
    metrics.answer_finished("refused")
    metrics.answer_finished("error", None)
    assert value(metrics, "bot_answers_total", status="complete") == 2
    assert value(metrics, "bot_answers_total", status="refused") == 1
    assert value(metrics, "bot_answers_total", status="error") == 1
    assert value(metrics, "bot_answers_total", status="stopped") is None  # never seen: no series
    assert value(metrics, "bot_tokens_total", kind="prompt") == 20
    assert value(metrics, "bot_tokens_total", kind="completion") == 35


def test_errors_by_kind_and_spend_by_server_in_usd() -> None:
    metrics = Metrics()
    metrics.openrouter_error("RateLimited")
    metrics.openrouter_error("RateLimited")
    metrics.openrouter_error("InsufficientCredits")
    metrics.spent(123, Decimal("0.000125"))
    metrics.spent(123, Decimal("0.5"))
    metrics.spent(456, Decimal("0"))
    metrics.spent(None, Decimal("0.25"))
    metrics.spent(0, Decimal("0.25"))  # 0 is how the quotas name direct messages
    assert value(metrics, "bot_openrouter_errors_total", kind="RateLimited") == 2
    assert value(metrics, "bot_openrouter_errors_total", kind="InsufficientCredits") == 1
    assert value(metrics, "bot_spend_usd_total", guild="123") == pytest.approx(0.500125)
    assert value(metrics, "bot_spend_usd_total", guild="456") == 0
    assert value(metrics, "bot_spend_usd_total", guild="dm") == pytest.approx(0.5)


def test_latencies_fall_in_their_buckets() -> None:
    metrics = Metrics()
    for seconds in (0.03, 0.4, 2.5, 45.0):
        metrics.first_token(seconds)
    metrics.first_visible_words(1.2)
    metrics.first_visible_words(-0.01)  # clocks a hair apart: counted as 0, never negative
    assert LATENCY_BUCKETS[0] == 0.05 and LATENCY_BUCKETS[-1] == 30.0
    assert value(metrics, "bot_first_token_seconds_count") == 4
    assert value(metrics, "bot_first_token_seconds_bucket", le="0.05") == 1
    assert value(metrics, "bot_first_token_seconds_bucket", le="0.5") == 2
    assert value(metrics, "bot_first_token_seconds_bucket", le="3.0") == 3
    assert value(metrics, "bot_first_token_seconds_bucket", le="30.0") == 3
    assert value(metrics, "bot_first_token_seconds_bucket", le="+Inf") == 4
    assert value(metrics, "bot_first_token_seconds_sum") == pytest.approx(47.93)
    assert value(metrics, "bot_first_visible_words_seconds_count") == 2
    assert value(metrics, "bot_first_visible_words_seconds_bucket", le="0.05") == 1
    assert value(metrics, "bot_first_visible_words_seconds_sum") == pytest.approx(1.2)


def test_answers_in_progress_are_read_when_scraped() -> None:
    metrics = Metrics()
    running: list[object] = []
    metrics.watch_streaming(running.__len__)
    assert value(metrics, "bot_answers_streaming") == 0
    running += [object(), object()]
    assert value(metrics, "bot_answers_streaming") == 2
    running.clear()
    assert value(metrics, "bot_answers_streaming") == 0


def test_two_metrics_objects_share_nothing() -> None:
    first, second = Metrics(), Metrics()
    first.answer_finished("complete")
    assert value(first, "bot_answers_total", status="complete") == 1
    assert value(second, "bot_answers_total", status="complete") is None


def test_discord_429s_by_scope_and_invalid_requests_in_a_rolling_window() -> None:
    now = [1000.0]
    limits = DiscordLimits(ChannelPacer(margin=0.0), clock=lambda: now[0])
    metrics = Metrics()
    assert value(metrics, "bot_discord_invalid_requests") is None  # no Discord layer yet: nothing to say
    metrics.watch_discord(limits)
    limits.observe(429, {"X-RateLimit-Scope": "global", "Retry-After": "0.1"}, "/api/v10/channels/5/messages")
    limits.observe(429, {"X-RateLimit-Scope": "user", "X-RateLimit-Reset-After": "0.1"}, "/api/v10/channels/5/messages")
    limits.observe(429, {"X-RateLimit-Scope": "user", "X-RateLimit-Reset-After": "0.1"}, "/api/v10/channels/6/messages")
    limits.observe(429, {"X-RateLimit-Scope": "shared", "Retry-After": "0.1"}, "/api/v10/channels/5/messages")
    limits.observe(403, {}, "/api/v10/channels/5/messages")
    limits.observe(200, {}, "/api/v10/channels/5/messages")
    assert value(metrics, "bot_discord_rate_limits_total", scope="global") == 1
    assert value(metrics, "bot_discord_rate_limits_total", scope="route") == 2
    assert value(metrics, "bot_discord_rate_limits_total", scope="shared") == 1
    assert value(metrics, "bot_discord_invalid_requests") == 4  # a shared 429 is not held against the bot
    now[0] += INVALID_WINDOW / 2
    limits.observe(401, {}, "/api/v10/users/@me")
    assert value(metrics, "bot_discord_invalid_requests") == 5
    now[0] += INVALID_WINDOW / 2 + 1  # the first four left the 10 minutes; the 429s stay counted
    assert value(metrics, "bot_discord_invalid_requests") == 1
    assert value(metrics, "bot_discord_rate_limits_total", scope="route") == 2


async def test_the_endpoint_serves_the_text_format_and_closes(unused_tcp_port: int) -> None:
    metrics = Metrics()
    metrics.answer_finished("complete", Usage(prompt_tokens=3, completion_tokens=4))
    metrics.spent(77, Decimal("0.01"))
    endpoint = MetricsEndpoint(metrics, host="127.0.0.1", port=unused_tcp_port)
    await endpoint.start()
    url = f"http://127.0.0.1:{unused_tcp_port}/metrics"
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200 and resp.content_type == "text/plain"
            text = await resp.text()
    finally:
        await endpoint.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["bot_answers"].type == "counter"
    assert families["bot_first_token_seconds"].type == "histogram"
    assert families["bot_answers_streaming"].type == "gauge"
    assert 'bot_answers_total{status="complete"} 1.0' in text
    assert 'bot_spend_usd_total{guild="77"} 0.01' in text
    with pytest.raises(aiohttp.ClientConnectionError):  # closed: nothing listens any more
        async with aiohttp.ClientSession() as http, http.get(url):
            pass


async def test_a_port_already_taken_is_an_error(unused_tcp_port: int) -> None:
    first = MetricsEndpoint(Metrics(), host="127.0.0.1", port=unused_tcp_port)
    await first.start()
    try:
        with pytest.raises(OSError):
            await MetricsEndpoint(Metrics(), host="127.0.0.1", port=unused_tcp_port).start()
    finally:
        await first.close()


async def test_python_m_bot_stops_with_one_line_when_the_metrics_port_is_taken(tmp_path: Path,
                                                                               unused_tcp_port: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OPENROUTER_", "METRICS_"))} | {
        "DISCORD_TOKEN": "t", "OPENROUTER_API_KEY": "sk-or-v1-metrics-key", "OPENROUTER_BASE_URL": "http://127.0.0.1:9",
        "DATABASE_PATH": str(tmp_path / "bot.sqlite3"), "LOG_FORMAT": "console", "PYTHONPATH": str(ROOT),
        "METRICS_PORT": str(unused_tcp_port), "METRICS_HOST": "127.0.0.1",
    }
    taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", unused_tcp_port)
    try:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=tmp_path, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        taken.close()
        await taken.wait_closed()
    assert proc.returncode == 1, out
    assert f"cannot serve metrics on 127.0.0.1:{unused_tcp_port}" in out.decode()
    assert "Traceback" not in out.decode()
