"""Discord's IDENTIFY limit, kept for every process of the bot at once.

Discord lets `max_concurrency` shards identify per 5 seconds: shard `s` is in bucket
`s % max_concurrency`, and each bucket takes one IDENTIFY per 5 s for the whole bot, whichever
process or machine it comes from. One more is answered with INVALID_SESSION and costs a session start
of the daily budget. The processes share the bot's database, so a shard claims its bucket there (one
conditional statement: exactly one claimant wins) before it identifies, and waits while another holds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.logs import get_logger

log = get_logger(__name__)

IDENTIFY_WINDOW = 5.0  # Discord's: one IDENTIFY per bucket per 5 s
CLOCK_MARGIN = 0.5  # network jitter, and clocks of several machines that NTP keeps close but not equal


class IdentifyGate:
    def __init__(self, claim: Callable[[int, float], Awaitable[float]], max_concurrency: Callable[[], Awaitable[int]],
                 *, window: float = IDENTIFY_WINDOW + CLOCK_MARGIN) -> None:
        self.window = window
        self._claim = claim  # (bucket, window) → 0 when claimed, else seconds until it frees
        self._fetch_concurrency = max_concurrency
        self._concurrency: int | None = None
        self.waited = 0.0

    async def concurrency(self) -> int:
        """Discord's `max_concurrency` (from GET /gateway/bot, read once); 1 if it cannot be read."""
        if self._concurrency is None:
            try:
                self._concurrency = max(1, await self._fetch_concurrency())
            except Exception as exc:  # the gateway will still be reached; 1 is the strictest reading
                log.warning("could not read Discord's identify concurrency; assuming 1", error=repr(exc))
                self._concurrency = 1
        return self._concurrency

    async def wait_turn(self, shard_id: int) -> None:
        """Return once this shard may IDENTIFY (its bucket claimed for the next 5 s)."""
        bucket = shard_id % await self.concurrency()
        while True:
            try:
                wait = await self._claim(bucket, self.window)
            except Exception as exc:  # the database is busy: wait a whole window, as if another shard had it
                log.warning("could not claim an identify slot", shard=shard_id, error=repr(exc))
                wait = self.window
            if wait <= 0:
                return
            self.waited += wait
            log.debug("waiting for the identify slot", shard=shard_id, bucket=bucket, seconds=round(wait, 2))
            await asyncio.sleep(wait)
