"""The one retry helper: every retry in the bot (OpenRouter requests, streams before their first
token, `/generation` polls, database writes that must land) goes through `Retrier`.

A *schedule* says, for each failure, how long to wait before the next try, or that it is time to give
up: `(retry number from 1, the error, seconds since the first try) -> seconds, or None`. `Retrier`
runs one: it counts the failures of one operation, tells the caller before each retry, and sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")
E = TypeVar("E", bound=Exception)

Schedule = Callable[[int, E, float], float | None]


@dataclass(frozen=True, slots=True)
class RetryNotice(Generic[E]):
    """Told to the caller before each retry, so a person can see why something is late."""

    attempt: int  # the retry about to happen, from 1
    delay: float
    error: E


OnRetry = Callable[[RetryNotice[E]], Awaitable[None]]


class Retrier(Generic[E]):
    """The failures of one operation, counted against a schedule.

    Use::

        retrier = Retrier(schedule, on_retry, what="OpenRouter request")
        while True:
            try:
                return await try_once()
            except SomeError as exc:
                await retrier.backoff(exc)  # waits, or re-raises `exc` when the schedule gives up
    """

    def __init__(self, schedule: Schedule[E], on_retry: OnRetry[E] | None = None, *, what: str = "request",
                 quiet: Callable[[E], bool] = lambda _: False) -> None:
        self.retries = 0
        self._schedule = schedule
        self._on_retry = on_retry
        self._what = what
        self._quiet = quiet  # retries the schedule expects (a poll) are logged at info, not warning
        self._started = time.monotonic()

    async def backoff(self, error: E) -> None:
        """Wait before the next try; re-raise `error` when the schedule says to give up."""
        delay = self._schedule(self.retries + 1, error, time.monotonic() - self._started)
        if delay is None:
            raise error
        self.retries += 1
        notice = RetryNotice(self.retries, delay, error)
        report = log.info if self._quiet(error) else log.warning
        report(f"retrying {self._what}", attempt=notice.attempt, delay=round(delay, 3), error=repr(error))
        if self._on_retry is not None:
            try:
                await self._on_retry(notice)
            except Exception:
                log.exception("retry callback failed")
        await asyncio.sleep(delay)


async def call_with_retries(call: Callable[[], Awaitable[T]], schedule: Schedule[E], *,
                            retry_on: type[E] | tuple[type[E], ...], on_retry: OnRetry[E] | None = None,
                            what: str = "request", quiet: Callable[[E], bool] = lambda _: False) -> T:
    """`await call()` until it succeeds or `schedule` gives up (then its last error is raised).
    Errors other than `retry_on` are never retried."""
    retrier: Retrier[E] = Retrier(schedule, on_retry, what=what, quiet=quiet)
    while True:
        try:
            return await call()
        except retry_on as exc:
            await retrier.backoff(exc)
