"""How long to wait before retrying a failed OpenRouter request, and when to give up.

Which errors are worth a retry is said by the error classes themselves (`OpenRouterError.retryable`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


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

