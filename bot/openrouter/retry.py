"""When to try an OpenRouter request again.

`RetryPolicy.next_delay` is the schedule (see `bot.retry`) of ordinary requests: transient errors
only (the error classes say which, with `OpenRouterError.retryable`), exponential backoff with jitter,
the server's `Retry-After` honoured, a cap on retries and on the total time. The retrying itself is
`bot.retry`'s, shared with every other retry in the bot.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bot.openrouter.errors import OpenRouterError, RateLimited
from bot.retry import Retrier
from bot.retry import RetryNotice as GenericNotice
from bot.retry import call_with_retries as retrying

T = TypeVar("T")

Schedule = Callable[[int, OpenRouterError, float], float | None]
RetryNotice = GenericNotice[OpenRouterError]
OnRetry = Callable[[RetryNotice], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 3  # retries after the first attempt
    base_delay: float = 0.5  # seconds, doubled each attempt
    max_delay: float = 8.0  # cap of one computed wait (a server's Retry-After may ask for more)
    budget: float = 30.0  # total seconds spent waiting and trying before giving up

    def delay(self, attempt: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based).

        Exponential backoff with "equal jitter" (half fixed, half random), unless the server said how
        long to wait, which is honoured (plus a little jitter so many clients do not return at once).
        """
        rand: float = (rng or random).random()
        if retry_after is not None:
            return retry_after + rand * min(1.0, self.base_delay)
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + rand * ceiling / 2

    def should_retry(self, attempt: int, delay: float, elapsed: float) -> bool:
        """Whether retry number `attempt`, after waiting `delay`, still fits the caps."""
        return attempt <= self.max_retries and elapsed + delay <= self.budget

    def next_delay(self, attempt: int, error: OpenRouterError, elapsed: float) -> float | None:
        """The schedule of ordinary requests (see `Schedule`): transient errors only, within the caps."""
        if not error.retryable:
            return None
        delay = self.delay(attempt, error.retry_after if isinstance(error, RateLimited) else None)
        return delay if self.should_retry(attempt, delay, elapsed) else None


def openrouter_retrier(schedule: Schedule, on_retry: OnRetry | None = None) -> Retrier[OpenRouterError]:
    """A retrier for one OpenRouter request. A retry of an error that is not transient is a poll the
    schedule expects (e.g. /generation's 404), logged quietly."""
    return Retrier(schedule, on_retry, what="OpenRouter request", quiet=lambda e: not e.retryable)


async def call_with_retries(call: Callable[[], Awaitable[T]], schedule: Schedule,
                            on_retry: OnRetry | None = None) -> T:
    """`await call()` until it succeeds or `schedule` gives up (then its last error is raised)."""
    return await retrying(call, schedule, retry_on=OpenRouterError, on_retry=on_retry, what="OpenRouter request",
                          quiet=lambda e: not e.retryable)
