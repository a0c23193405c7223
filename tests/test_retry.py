"""The one retry helper, on its own: schedules, which errors are retried, notices."""

from __future__ import annotations

import sqlite3
import time

import pytest

from bot.retry import Retrier, RetryNotice, call_with_retries


async def test_retrier_counts_and_waits() -> None:
    retrier: Retrier[OSError] = Retrier(lambda attempt, error, elapsed: 0.05 * attempt)
    started = time.monotonic()
    await retrier.backoff(OSError("cut"))
    await retrier.backoff(OSError("cut"))
    assert retrier.retries == 2 and time.monotonic() - started >= 0.15


async def test_only_the_named_errors_are_retried_and_the_last_one_is_raised() -> None:
    attempts: list[int] = []
    notices: list[RetryNotice[sqlite3.Error]] = []

    async def locked() -> str:
        attempts.append(1)
        raise sqlite3.OperationalError(f"database is locked ({len(attempts)})")

    async def notice(n: RetryNotice[sqlite3.Error]) -> None:
        notices.append(n)

    with pytest.raises(sqlite3.OperationalError, match=r"\(3\)"):
        await call_with_retries(locked, lambda attempt, error, elapsed: 0.0 if attempt < 3 else None,
                                retry_on=sqlite3.Error, on_retry=notice, what="database write")
    assert len(attempts) == 3 and [n.attempt for n in notices] == [1, 2]

    async def broken() -> str:
        attempts.append(1)
        raise ValueError("a bug, not a transient failure")

    attempts.clear()
    with pytest.raises(ValueError):
        await call_with_retries(broken, lambda *_: 0.0, retry_on=sqlite3.Error)
    assert len(attempts) == 1
