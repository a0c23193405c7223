from __future__ import annotations

import random

import pytest

from bot.openrouter import errors as e
from bot.openrouter.retry import RetryNotice, RetryPolicy, call_with_retries


def test_exponential_backoff_with_equal_jitter_and_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (9, 4.0)]:
        delays = [policy.delay(attempt, rng=rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2
        assert max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # really jittered


def test_server_delay_is_honoured_even_above_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    delay = policy.delay(1, retry_after=10.0, rng=random.Random(2))
    assert 10.0 <= delay <= 10.5


def test_attempt_and_time_caps() -> None:
    policy = RetryPolicy(max_retries=3, budget=10.0)
    assert policy.should_retry(3, 1.0, 0.0)
    assert not policy.should_retry(4, 1.0, 0.0)
    assert not policy.should_retry(1, 11.0, 0.0)
    assert not policy.should_retry(1, 1.0, 9.5)



def test_the_policy_schedule_retries_only_transient_errors_within_the_caps() -> None:
    policy = RetryPolicy(max_retries=2, base_delay=0.5, max_delay=4.0, budget=10.0)
    assert policy.next_delay(1, e.BadRequest("no"), 0.0) is None
    assert policy.next_delay(1, e.AuthenticationFailed("no"), 0.0) is None
    delay = policy.next_delay(1, e.ProviderUnavailable("down"), 0.0)
    assert delay is not None and 0.25 <= delay <= 0.5
    assert policy.next_delay(3, e.ProviderUnavailable("down"), 0.0) is None  # past max_retries
    waited = policy.next_delay(1, e.RateLimited("slow", retry_after=3.0), 0.0)
    assert waited is not None and 3.0 <= waited <= 3.5  # the server's Retry-After
    assert policy.next_delay(1, e.RateLimited("slow", retry_after=30.0), 0.0) is None  # beyond the budget


async def test_call_with_retries_tells_each_retry_then_gives_up_with_the_last_error() -> None:
    errors = [e.ProviderUnavailable("one"), e.ConnectionFailed("two"), e.ProviderUnavailable("three")]
    notices: list[RetryNotice] = []

    async def call() -> str:
        raise errors[len(notices)]

    async def on_retry(notice: RetryNotice) -> None:
        notices.append(notice)

    def schedule(attempt: int, error: e.OpenRouterError, elapsed: float) -> float | None:
        return 0.0 if attempt <= 2 else None

    with pytest.raises(e.ProviderUnavailable, match="three"):
        await call_with_retries(call, schedule, on_retry)
    assert [(n.attempt, n.delay, n.error) for n in notices] == [(1, 0.0, errors[0]), (2, 0.0, errors[1])]


async def test_a_failing_retry_callback_does_not_stop_the_retry() -> None:
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise e.RequestTimeout("408")
        return "ok"

    async def on_retry(notice: RetryNotice) -> None:
        raise RuntimeError("Discord is down")

    assert await call_with_retries(call, RetryPolicy(base_delay=0.01).next_delay, on_retry) == "ok"
    assert calls == 2
