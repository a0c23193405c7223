"""Pacing of writes per Discord channel, so the bot stays inside Discord's per-channel budget.

Discord allows about 5 message sends or edits per 5 seconds per channel. Every write the bot makes
to a channel (edits of streaming answers, continuation messages, final edits) first takes a slot
here; writes beyond the budget wait instead of drawing a 429.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable


class ChannelPacer:
    PRUNE_ABOVE = 256  # channels tracked before idle ones are forgotten

    def __init__(self, *, writes: int = 5, per: float = 5.0, margin: float = 0.3,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.writes = writes
        self.per = per + margin  # a little slack for network jitter between us and Discord's clock
        self._clock = clock
        self._sent: dict[int, collections.deque[float]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self.waited = 0.0  # total seconds writes spent waiting (for benchmarks)

    def _window(self, channel_id: int) -> collections.deque[float]:
        window = self._sent.get(channel_id)
        if window is None:
            window = self._sent[channel_id] = collections.deque()
        now = self._clock()
        while window and now - window[0] >= self.per:
            window.popleft()
        return window

    def delay(self, channel_id: int, *, reserve: int = 0) -> float:
        """Seconds until a write to this channel fits the budget (0 when it fits now).

        `reserve` keeps that many slots free: live edits of a streaming answer leave room for the
        writes that matter more (the final edit, a continuation message).
        """
        window = self._window(channel_id)
        allowed = max(1, self.writes - reserve)
        if len(window) < allowed:
            return 0.0
        return max(0.0, window[len(window) - allowed] + self.per - self._clock())

    async def acquire(self, channel_id: int, *, reserve: int = 0) -> None:
        """Wait for a slot, then take it. Writes to one channel go out in the order they asked."""
        if len(self._sent) > self.PRUNE_ABOVE:
            self.forget_idle()
        lock = self._locks.get(channel_id)
        if lock is None:
            lock = self._locks[channel_id] = asyncio.Lock()
        async with lock:
            wait = self.delay(channel_id, reserve=reserve)
            while wait > 0:
                self.waited += wait
                await asyncio.sleep(wait)
                wait = self.delay(channel_id, reserve=reserve)
            self._window(channel_id).append(self._clock())

    def assume_full(self, channel_id: int) -> None:
        """Treat this channel's budget as spent just now: at start, for channels the previous process
        may have written to moments ago (Discord still counts those writes; this process cannot know)."""
        window = self._window(channel_id)
        now = self._clock()
        window.extend([now] * max(0, self.writes - len(window)))

    def forget_idle(self) -> None:
        """Drop the bookkeeping of channels with no recent writes (`acquire` calls it as channels pile up)."""
        for channel_id in list(self._sent):
            lock = self._locks.get(channel_id)
            if not self._window(channel_id) and (lock is None or not lock.locked()):
                self._sent.pop(channel_id, None)
                self._locks.pop(channel_id, None)
