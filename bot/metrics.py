"""What the operator watches: one `Metrics` per process, owning its own Prometheus registry.

The core and the Discord layer call its few named methods (`answer_finished`, `first_token`, `spent`…);
nothing else touches Prometheus. Numbers that already live elsewhere are read when Prometheus scrapes
(answers streaming now, Discord's 429s and invalid requests), so they can never drift from the truth.
`bot.metrics_http` serves the registry when `METRICS_PORT` is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# From a quick local model (50 ms) to a slow one under load (30 s); Prometheus adds +Inf.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0)
DM_LABEL = "dm"  # spend in direct messages, which count together as one budget


class TokenUsage(Protocol):
    """The token counts OpenRouter reported for one answer (`bot.openrouter.types.Usage`)."""

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...


class DiscordCounts(Protocol):
    """What the Discord layer knows of Discord's answers (`bot.discord.limits.DiscordLimits`)."""

    @property
    def rate_limited(self) -> Mapping[str, int]:
        """429s received since start, by scope (global, route, shared)."""

    def invalid_in_window(self) -> int:
        """401, 403 and 429 responses in the last 10 minutes."""


class _DiscordCollector(Collector):
    """Discord's 429s and invalid requests, read from the Discord layer at scrape time."""

    def __init__(self) -> None:
        self.source: DiscordCounts | None = None

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        limited, invalid = self._families()
        if self.source is not None:
            for scope, count in sorted(self.source.rate_limited.items()):
                limited.add_metric([scope], count)
            invalid.add_metric([], self.source.invalid_in_window())
        yield from (limited, invalid)

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, GaugeMetricFamily]:
        return (CounterMetricFamily("bot_discord_rate_limits", "429 responses from Discord, by scope",
                                    labels=["scope"]),
                GaugeMetricFamily("bot_discord_invalid_requests",
                                  "401, 403 and 429 responses from Discord in the last 10 minutes (ban at 10,000)"))


class Metrics:
    """The bot's metrics. Build one per process and pass it to whoever records."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self._streaming = Gauge("bot_answers_streaming", "Answers in progress now (first message to final form)",
                                registry=r)
        self._answers = Counter("bot_answers", "Answers finished, by how they ended", ["status"], registry=r)
        self._tokens = Counter("bot_tokens", "Tokens OpenRouter reported, by kind", ["kind"], registry=r)
        self._errors = Counter("bot_openrouter_errors", "Errors of chat requests to OpenRouter (each attempt), by kind",
                               ["kind"], registry=r)
        self._spend = Counter("bot_spend_usd", "USD settled against budgets, by server (dm: direct messages)",
                              ["guild"], registry=r)
        self._first_token = Histogram("bot_first_token_seconds", "From the request to OpenRouter to its first token",
                                      buckets=LATENCY_BUCKETS, registry=r)
        self._first_words = Histogram("bot_first_visible_words_seconds",
                                      "From the question in Discord to Discord accepting the answer's first words",
                                      buckets=LATENCY_BUCKETS, registry=r)
        self._discord = _DiscordCollector()
        r.register(self._discord)

    # -- read at scrape time ---------------------------------------------------------------------

    def watch_streaming(self, count: Callable[[], int]) -> None:
        """`count()` is the number of answers in progress (the core's `ActiveAnswers`)."""
        self._streaming.set_function(count)

    def watch_discord(self, source: DiscordCounts) -> None:
        self._discord.source = source

    # -- recorded as things happen ---------------------------------------------------------------

    def answer_finished(self, status: str, usage: TokenUsage | None = None) -> None:
        """An answer ended (`AnswerStatus`), with the tokens OpenRouter reported for it, if any."""
        self._answers.labels(status=status).inc()
        if usage is not None:
            self._tokens.labels(kind="prompt").inc(usage.prompt_tokens)
            self._tokens.labels(kind="completion").inc(usage.completion_tokens)

    def openrouter_error(self, kind: str) -> None:
        """A chat request failed (`OpenRouterError.kind`), whether or not it is retried."""
        self._errors.labels(kind=kind).inc()

    def spent(self, guild_id: int | None, usd: Decimal) -> None:
        """A settled cost, in USD; `guild_id` None or 0 for direct messages."""
        self._spend.labels(guild=str(guild_id) if guild_id else DM_LABEL).inc(float(usd))

    def first_token(self, seconds: float) -> None:
        self._first_token.observe(max(0.0, seconds))

    def first_visible_words(self, seconds: float) -> None:
        self._first_words.observe(max(0.0, seconds))
