"""Pacing of the bot's writes to Discord, so it stays inside Discord's limits instead of drawing 429s.

Two budgets (see ../shared notes on Discord's limits, modelled by tests/fakes/discord):
- per channel: the channel's bucket as Discord reports it in its `X-RateLimit-*` headers (`learn`,
  fed by limits.py), 5 writes per 5 seconds until a header has been seen;
- global: Discord allows 50 requests a second per bot, interaction webhooks exempt; the bot's writes
  take at most `global_per_second` (45 by default, so commands and reads keep headroom), and live
  edits of streaming answers at most `live_share` of that, so first words, final edits, continuation
  messages and threads always find room.
Waiting writes are served in order, not by whoever wakes first: every other write before live edits
(and among those, by `rank`: a reply that would open with no words yet goes after the rest), live
edits oldest-updated first (`rank` = when the answer was last edited), so with many answers streaming
each one simply edits less often, and evenly. Every write (edits, continuation messages, final edits,
thread creation) first takes its slots here.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

Rank = Callable[[], float]  # lower goes first among waiting writes of the same kind; read when a slot frees


@dataclass(slots=True)
class _Waiter:
    live: bool
    rank: Rank | None
    seq: int
    wordless: Callable[[], bool] | None = None  # a reply that would open with no words yet (a placeholder)
    patient_until: float = 0.0  # ... which may wait for its words until then while the budget is short
    granted: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def order(self) -> tuple[bool, float, int]:
        return self.live, self.rank() if self.rank is not None else 0.0, self.seq

    def may_wait(self, now: float) -> bool:
        return self.wordless is not None and now < self.patient_until and self.wordless()


class ChannelPacer:
    PRUNE_ABOVE = 256  # channels tracked before idle ones are forgotten

    GLOBAL_WINDOW = 1.0
    AWAIT_ANSWERS = 0.05  # with the budget taken by requests still on their way, look again this often at most
    UNSEEN_AFTER = 10.0  # a granted write never seen going out, or a request never answered, stops counting
    PLACEHOLDER_PATIENCE = 2.0  # seconds a reply's placeholder may wait for its words while the budget is short

    def __init__(self, *, writes: int = 5, per: float = 5.0, margin: float = 0.3, global_per_second: int = 45,
                 live_share: float = 0.8, clock: Callable[[], float] = time.monotonic) -> None:
        self.writes = writes
        self.per = per + margin  # a little slack for network jitter between us and Discord's clock
        self.global_limit = global_per_second
        self.live_limit = max(1, int(global_per_second * live_share))
        self._global_per = self.GLOBAL_WINDOW + min(margin, 0.05)
        # A global slot counts from its grant, through its request, until a window after the response
        # came back (Discord counted the request at some moment before it answered): `_granted` (grant
        # times), `_in_flight` (send times), `_answered` (response times).
        self._granted: collections.deque[float] = collections.deque()
        self._in_flight: collections.deque[float] = collections.deque()
        self._answered: collections.deque[float] = collections.deque()
        self._global_paused_until = 0.0
        self._paused_until: dict[int, float] = {}  # channel → when Discord's 429 lets it write again
        self.live_slowdown = 1.0  # > 1 near Discord's invalid-request ban: live edits get that much less
        self.awaiting_words = 0  # answers streaming whose first words are not shown yet (views count them)
        self._clock = clock
        self._sent: dict[int, collections.deque[float]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._buckets: dict[int, tuple[int, float]] = {}  # channel → (writes, per) as Discord reported them
        self._margin = margin
        self._waiters: list[_Waiter] = []  # writes waiting for a global slot
        self._seq = count()
        self._timer: asyncio.TimerHandle | None = None
        self.waited = 0.0  # total seconds writes spent waiting (for benchmarks)

    def bucket(self, channel_id: int) -> tuple[int, float]:
        """The channel's budget: (writes, per seconds with the margin)."""
        return self._buckets.get(channel_id) or (self.writes, self.per)

    def _window(self, channel_id: int) -> collections.deque[float]:
        window = self._sent.get(channel_id)
        if window is None:
            window = self._sent[channel_id] = collections.deque()
        now, per = self._clock(), self.bucket(channel_id)[1]
        while window and now - window[0] >= per:
            window.popleft()
        return window

    def learn(self, channel_id: int, *, limit: int, remaining: int, reset_after: float) -> None:
        """What Discord's `X-RateLimit-*` headers said of this channel's bucket after a write: its size,
        its window (read when the write opened it), and how much of it is left."""
        if limit < 1:
            return
        per = self.bucket(channel_id)[1]
        if remaining == limit - 1 and reset_after > 0:  # the write that opened a window: its length
            per = reset_after + self._margin
        self._buckets[channel_id] = (limit, per)
        window, now = self._window(channel_id), self._clock()
        if remaining <= 0:  # none left until Discord resets it (someone else may have written)
            self.pause_channel(channel_id, reset_after)
        elif len(window) < limit - remaining:  # Discord counts more writes than this process made
            window.extend([now] * (limit - remaining - len(window)))

    def delay(self, channel_id: int, *, reserve: int = 0) -> float:
        """Seconds until a write to this channel fits the budget (0 when it fits now).

        `reserve` keeps that many slots free: live edits of a streaming answer leave room for the
        writes that matter more (the final edit, a continuation message).
        """
        window = self._window(channel_id)
        writes, per = self.bucket(channel_id)
        allowed = max(1, writes - reserve)
        paused = self._paused_until.get(channel_id, 0.0) - self._clock()
        if len(window) < allowed:
            return max(0.0, paused)
        return max(0.0, paused, window[len(window) - allowed] + per - self._clock())

    def global_delay(self, *, live: bool = False) -> float:
        """Seconds until a write fits the bot's global budget (live edits get a smaller share of it)."""
        now = self._clock()
        counted = self._counted(now)
        allowed = self._live_allowed() if live else self.global_limit
        paused = self._global_paused_until - now
        if counted < allowed:
            return max(0.0, paused)
        leaving = counted - allowed  # this many must leave first, then one more
        if leaving < len(self._answered):
            return max(0.0, paused, self._answered[leaving] + self._global_per - now)
        return max(0.0, paused, self.AWAIT_ANSWERS)  # the rest are still on their way: `answered` looks again

    def _counted(self, now: float) -> int:
        """Global slots taken now: granted, in flight, or answered less than a window ago."""
        answered = self._answered
        while answered and now - answered[0] >= self._global_per:
            answered.popleft()
        for unseen in (self._granted, self._in_flight):  # a write that never went out, a request never answered
            while unseen and now - unseen[0] >= self.UNSEEN_AFTER:
                unseen.popleft()
        return len(answered) + len(self._in_flight) + len(self._granted)

    def sent(self) -> None:
        """A request under Discord's global limit went out just now (limits.py sees each one): a granted
        slot whose request had not gone out yet is settled by it, and it counts until it is answered."""
        now = self._clock()
        self._counted(now)
        if self._granted:
            self._granted.popleft()
        self._in_flight.append(now)

    def answered(self) -> None:
        """Discord answered a request under the global limit (or it failed): it counted that request at
        some moment before, so from now on it holds its slot for one window more, however late the busy
        event loop sent it or Discord read it. Waiting writes look again."""
        now = self._clock()
        self._counted(now)
        if self._in_flight:
            self._in_flight.popleft()
        self._answered.append(now)
        if self._waiters:
            self._serve()

    def _live_allowed(self) -> int:
        """Live edits' share; while answers wait for their first words, a tenth of the budget, so that
        no answer's later edits delay another's first words (each simply edits less often meanwhile)."""
        share = self.live_limit if not self.awaiting_words else self.global_limit // 10
        return max(1, int(share / self.live_slowdown))

    def pause_global(self, seconds: float) -> None:
        """Discord answered a global 429: no write until it allows them again."""
        self._global_paused_until = max(self._global_paused_until, self._clock() + seconds)

    def pause_channel(self, channel_id: int, seconds: float) -> None:
        """Discord answered a 429 for this channel's bucket: its writes wait that long."""
        until = self._clock() + seconds
        self._paused_until[channel_id] = max(self._paused_until.get(channel_id, 0.0), until)

    async def acquire(self, channel_id: int | None, *, reserve: int = 0, live: bool = False,
                      global_budget: bool = True, rank: Rank | None = None,
                      wordless: Callable[[], bool] | None = None) -> None:
        """Wait for a slot, then take it: the channel's (when `channel_id` is given; writes to one channel
        go out in the order they asked) and the global budget's (unless the route is exempt, as
        interaction webhooks are). `live` marks an edit of a streaming answer: it yields to the rest.
        Among waiting writes of one kind, the lowest `rank` goes first (then the first to ask).

        `wordless` marks a reply's first message that would show no words yet (a placeholder, which costs
        a second write for the same words later): while the budget has fewer free slots than answers
        waiting for their first words, it waits for its words, `PLACEHOLDER_PATIENCE` seconds at most
        (call `nudge` when they come)."""
        if channel_id is None:
            await self._take_global(live=live, rank=rank, wordless=wordless)
            return
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
            if global_budget:
                await self._take_global(live=live, rank=rank, wordless=wordless)
            self._window(channel_id).append(self._clock())

    async def _take_global(self, *, live: bool, rank: Rank | None, wordless: Callable[[], bool] | None) -> None:
        now = self._clock()
        waiter = _Waiter(live, rank, next(self._seq), wordless, now + self.PLACEHOLDER_PATIENCE)
        if not self._waiters and self.global_delay(live=live) <= 0 and not self._holds_back(waiter, now):
            self._granted.append(now)
            return
        self._waiters.append(waiter)
        asked = now
        self._serve()
        try:
            await waiter.granted
        finally:
            self.waited += self._clock() - asked
            if waiter in self._waiters:  # cancelled while waiting: it takes nothing
                self._waiters.remove(waiter)
                self._serve()

    def _serve(self) -> None:
        """Grant global slots to waiting writes, best first, while the budget has room; then sleep until
        it has again (one timer for every waiting write, not a wake-up of each)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:
            now = self._clock()
            best = next((w for w in sorted(self._waiters, key=_Waiter.order) if not self._holds_back(w, now)), None)
            if best is None:  # only placeholders that may still wait for their words
                wait = min(w.patient_until for w in self._waiters) - now
            else:
                wait = self.global_delay(live=best.live)
            if wait > 0 or best is None:
                self._timer = asyncio.get_running_loop().call_later(max(wait, 0.001), self._serve)
                return
            self._waiters.remove(best)
            if not best.granted.done():  # (cancelled: it leaves the list itself and takes nothing)
                self._granted.append(self._clock())
                best.granted.set_result(None)

    def _holds_back(self, waiter: _Waiter, now: float) -> bool:
        """A placeholder waits for its words while the budget is short: fewer free slots than answers
        waiting for their first words, each of which needs a write soon."""
        return waiter.may_wait(now) and self.global_limit - self._counted(now) < self.awaiting_words

    def nudge(self) -> None:
        """Something a waiting write depends on changed (a placeholder's words came): look again."""
        if self._waiters:
            self._serve()

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
        now = self._clock()
        for channel_id in [c for c, until in self._paused_until.items() if until <= now]:
            del self._paused_until[channel_id]
