"""When to try an OpenRouter request again, and the one helper every retry goes through.

A *schedule* says, for each failure, how long to wait before the next try, or that it is time to give
up. `RetryPolicy.next_delay` is the schedule of ordinary requests: transient errors only (the error
classes say which, with `OpenRouterError.retryable`), exponential backoff with jitter, the server's
`Retry-After` honoured, a cap on retries and on the total time. `Retrier` runs a schedule: it counts
the failures of one request, tells the caller before each retry, and sleeps.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bot.logs import get_logger
from bot.openrouter.errors import OpenRouterError, RateLimited

log = get_logger(__name__)
T = TypeVar("T")

Schedule = Callable[[int, OpenRouterError, float], float | None]
"""(retry number from 1, the error, seconds since the first try) -> seconds to wait, or None: give up."""


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """Told to the caller before each retry, so a person can see why the answer is late."""

    attempt: int  # the retry about to happen, from 1
    delay: float
    error: OpenRouterError


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


class Retrier:
    """The failures of one request, counted against a schedule.

    Use::

        retrier = Retrier(policy.next_delay, on_retry)
        while True:
            try:
                return await try_once()
            except OpenRouterError as exc:
                await retrier.backoff(exc)  # waits, or re-raises `exc` when the schedule gives up
    """

    def __init__(self, schedule: Schedule, on_retry: OnRetry | None = None) -> None:
        self.retries = 0
        self._schedule = schedule
        self._on_retry = on_retry
        self._started = time.monotonic()

    async def backoff(self, error: OpenRouterError) -> None:
        """Wait before the next try; re-raise `error` when the schedule says to give up."""
        delay = self._schedule(self.retries + 1, error, time.monotonic() - self._started)
        if delay is None:
            raise error
        self.retries += 1
        notice = RetryNotice(self.retries, delay, error)
        # A retry of a non-transient error is a poll the schedule expects (e.g. /generation's 404).
        report = log.warning if error.retryable else log.info
        report("retrying OpenRouter request", attempt=notice.attempt, delay=round(delay, 3), error=error.kind,
               status=error.status)
        if self._on_retry is not None:
            try:
                await self._on_retry(notice)
            except Exception:
                log.exception("retry callback failed")
        await asyncio.sleep(delay)


async def call_with_retries(call: Callable[[], Awaitable[T]], schedule: Schedule,
                            on_retry: OnRetry | None = None) -> T:
    """`await call()` until it succeeds or `schedule` gives up (then its last error is raised)."""
    retrier = Retrier(schedule, on_retry)
    while True:
        try:
            return await call()
        except OpenRouterError as exc:
            await retrier.backoff(exc)
