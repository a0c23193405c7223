from __future__ import annotations

import random

from bot.openrouter.retry import RetryPolicy


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

