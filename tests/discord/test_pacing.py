"""Unit tests for bot.discord.pacing.ChannelPacer: per-channel write budget."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bot.discord.pacing import ChannelPacer


class InstantPacer(ChannelPacer):
    """The pacer as the bot uses it, for tests without a Discord: each granted write's request goes out
    and is answered at once (in the bot, discord.py's trace reports both: `sent`, `answered`)."""

    async def acquire(self, channel_id: int | None, **kwargs: Any) -> None:
        await super().acquire(channel_id, **kwargs)
        if kwargs.get("global_budget", True):
            self.sent()
            self.answered()


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def take(pacer: ChannelPacer, channel_id: int) -> None:
    """A write whose slot is free now (with a frozen fake clock, a wait would never end)."""
    assert pacer.delay(channel_id) == 0.0
    await asyncio.wait_for(pacer.acquire(channel_id), timeout=1)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pacer(clock: FakeClock) -> ChannelPacer:
    return InstantPacer(writes=5, per=5.0, margin=0.0, clock=clock)


# -- delay() with an injected clock ---------------------------------------------------------------------


def test_fresh_channel_has_no_delay(pacer: ChannelPacer) -> None:
    assert pacer.delay(1) == 0.0
    assert pacer.delay(1, reserve=3) == 0.0


async def test_writes_up_to_the_budget_go_without_waiting(pacer: ChannelPacer, clock: FakeClock) -> None:
    for _ in range(5):
        await pacer.acquire(1)  # the fake clock never moves, so any wait would hang the test
        clock.advance(0.5)
    assert pacer.waited == 0.0
    # the sixth write must wait until the first (at 1000.0) leaves the 5 s window
    assert pacer.delay(1) == pytest.approx(5.0 - 2.5)


async def test_delay_counts_down_and_the_window_slides(pacer: ChannelPacer, clock: FakeClock) -> None:
    for _ in range(5):
        await take(pacer, 1)
        clock.advance(1.0)
    # writes at 1000..1004; now 1005: the write at 1000 leaves at exactly 1005
    assert pacer.delay(1) == 0.0
    await take(pacer, 1)  # a sixth write at 1005
    assert pacer.delay(1) == pytest.approx(1.0)  # the write at 1001 leaves at 1006
    clock.advance(0.4)
    assert pacer.delay(1) == pytest.approx(0.6)
    clock.advance(0.6)
    assert pacer.delay(1) == 0.0


async def test_at_most_writes_in_any_window(clock: FakeClock) -> None:
    pacer = InstantPacer(writes=3, per=2.0, margin=0.0, clock=clock)
    times: list[float] = []
    for _ in range(12):
        wait = pacer.delay(9)
        clock.advance(wait)  # do what acquire() does, with time jumping instead of sleeping
        await take(pacer, 9)
        times.append(clock())
        clock.advance(0.1)
    for i in range(len(times) - 3):
        assert times[i + 3] - times[i] >= 2.0 - 1e-9
    assert times[3] - times[0] == pytest.approx(2.0)  # and no more waiting than needed


async def test_margin_widens_the_window(clock: FakeClock) -> None:
    pacer = InstantPacer(writes=1, per=5.0, margin=0.3, clock=clock)
    await take(pacer, 1)
    assert pacer.delay(1) == pytest.approx(5.3)
    clock.advance(5.0)
    assert pacer.delay(1) == pytest.approx(0.3)
    clock.advance(0.3)
    assert pacer.delay(1) == 0.0


async def test_channels_are_independent(pacer: ChannelPacer, clock: FakeClock) -> None:
    for _ in range(5):
        await take(pacer, 1)
    assert pacer.delay(1) > 0
    assert pacer.delay(2) == 0.0
    for _ in range(4):
        await take(pacer, 2)
    assert pacer.delay(2) == 0.0
    assert pacer.delay(1) == pytest.approx(5.0)


async def test_reserve_leaves_slots_free(pacer: ChannelPacer, clock: FakeClock) -> None:
    for _ in range(4):
        await take(pacer, 1)
        clock.advance(1.0)
    # four of five slots used (at 1000..1003, now 1004): a normal write fits, a reserving one does not
    assert pacer.delay(1) == 0.0
    assert pacer.delay(1, reserve=1) == pytest.approx(1.0)  # until the write at 1000 leaves
    assert pacer.delay(1, reserve=2) == pytest.approx(2.0)  # until 1000 and 1001 have left


async def test_reserve_when_the_window_is_already_full(pacer: ChannelPacer, clock: FakeClock) -> None:
    for _ in range(5):
        await take(pacer, 1)
        clock.advance(1.0)
    # writes at 1000..1004, now 1005: the 1000 one has just left, four remain
    assert pacer.delay(1) == 0.0
    await take(pacer, 1)  # 1001..1005
    assert pacer.delay(1) == pytest.approx(1.0)
    assert pacer.delay(1, reserve=1) == pytest.approx(2.0)  # must get back down to three


async def test_reserve_never_blocks_a_channel_entirely(pacer: ChannelPacer, clock: FakeClock) -> None:
    assert pacer.delay(1, reserve=10) == 0.0
    await take(pacer, 1)
    # at least one write per window is always allowed
    assert pacer.delay(1, reserve=10) == pytest.approx(5.0)
    clock.advance(5.0)
    assert pacer.delay(1, reserve=10) == 0.0


async def test_forget_idle_drops_only_idle_channels(pacer: ChannelPacer, clock: FakeClock) -> None:
    await take(pacer, 1)
    clock.advance(3.0)
    await take(pacer, 2)
    pacer.delay(3)  # only looked at, never written to
    clock.advance(2.0)  # channel 1's write has left the window; channel 2's has not
    pacer.forget_idle()
    assert set(pacer._sent) == {2}
    clock.advance(3.0)
    pacer.forget_idle()
    assert pacer._sent == {}
    assert pacer.delay(2) == 0.0  # and a forgotten channel starts fresh


async def test_forget_idle_drops_locks_too(clock: FakeClock) -> None:
    pacer = InstantPacer(writes=2, per=1.0, margin=0.0, clock=clock)
    await pacer.acquire(1)
    assert 1 in pacer._locks
    pacer.forget_idle()
    assert 1 in pacer._sent  # still within its window
    clock.advance(1.0)
    pacer.forget_idle()
    assert pacer._sent == {}
    assert pacer._locks == {}


async def test_forget_idle_keeps_a_channel_with_a_waiting_write(clock: FakeClock) -> None:
    pacer = InstantPacer(writes=1, per=0.05, margin=0.0, clock=clock)
    await take(pacer, 1)
    waiting = asyncio.create_task(pacer.acquire(1))  # holds the channel's lock while it sleeps (~0.05 s)
    await asyncio.sleep(0)
    assert not waiting.done()
    lock = pacer._locks[1]
    clock.advance(1.0)  # the window is empty now, but a write is still on its way
    pacer.forget_idle()
    assert pacer._locks.get(1) is lock
    assert 1 in pacer._sent
    await asyncio.wait_for(waiting, timeout=1)
    assert pacer.delay(1) > 0  # the waiting write was counted
    clock.advance(1.0)
    pacer.forget_idle()
    assert pacer._sent == {}
    assert pacer._locks == {}


# -- acquire() with real, short waits (writes=2, per=0.1, margin=0) ---------------------------------------


def fast_pacer() -> ChannelPacer:
    return InstantPacer(writes=2, per=0.1, margin=0.0)


async def test_acquire_waits_once_the_budget_is_spent() -> None:
    pacer = fast_pacer()
    times: list[float] = []
    for _ in range(5):
        await pacer.acquire(1)
        times.append(time.monotonic())
    assert times[1] - times[0] < 0.05  # the first two go straight away
    for i in range(len(times) - 2):
        assert times[i + 2] - times[i] >= 0.1 - 1e-3  # never more than two in any 0.1 s
    assert times[-1] - times[0] < 0.5
    assert pacer.waited > 0


async def test_acquire_keeps_the_order_writes_asked_in() -> None:
    pacer = fast_pacer()
    order: list[int] = []
    stamps: list[float] = []

    async def write(n: int) -> None:
        await pacer.acquire(1)
        order.append(n)
        stamps.append(time.monotonic())

    await asyncio.gather(*(write(n) for n in range(6)))
    assert order == list(range(6))
    for i in range(len(stamps) - 2):
        assert stamps[i + 2] - stamps[i] >= 0.1 - 1e-3


async def test_acquire_on_one_channel_does_not_hold_up_another() -> None:
    pacer = fast_pacer()
    await pacer.acquire(1)
    await pacer.acquire(1)
    started = time.monotonic()
    slow = asyncio.create_task(pacer.acquire(1))  # must wait for channel 1's window
    await asyncio.wait_for(pacer.acquire(2), timeout=0.05)
    await asyncio.wait_for(pacer.acquire(2), timeout=0.05)
    assert time.monotonic() - started < 0.05
    assert not slow.done()
    await slow
    assert time.monotonic() - started >= 0.05


async def test_reserving_acquire_waits_while_a_normal_one_fits() -> None:
    pacer = fast_pacer()
    await pacer.acquire(1)
    started = time.monotonic()
    await pacer.acquire(1, reserve=1)  # only one slot left: a reserving write leaves it free and waits
    assert time.monotonic() - started >= 0.05
    pacer2 = fast_pacer()
    await pacer2.acquire(1)
    started = time.monotonic()
    await pacer2.acquire(1)  # a normal write takes the last slot at once
    assert time.monotonic() - started < 0.05


async def test_bookkeeping_of_idle_channels_is_pruned_as_channels_pile_up() -> None:
    clock = FakeClock()
    # the global budget is not what this test is about: wide enough for every channel at once
    pacer = InstantPacer(writes=5, per=5.0, margin=0.0, global_per_second=1000, clock=clock)
    for channel in range(ChannelPacer.PRUNE_ABOVE + 1):
        await pacer.acquire(channel)
    assert len(pacer._sent) == ChannelPacer.PRUNE_ABOVE + 1
    clock.advance(5.0)
    await pacer.acquire(10_000)
    assert set(pacer._sent) == {10_000} and set(pacer._locks) == {10_000}


def test_a_channel_assumed_full_waits_out_a_whole_window() -> None:

    now = [100.0]
    pacer = InstantPacer(writes=5, per=5.0, margin=0.0, clock=lambda: now[0])
    pacer.assume_full(7)
    assert pacer.delay(7) == 5.0 and pacer.delay(8) == 0.0
    now[0] += 5.0
    assert pacer.delay(7) == 0.0


async def test_the_global_budget_holds_across_channels_and_live_edits_yield() -> None:

    now = [50.0]
    pacer = InstantPacer(writes=5, per=5.0, margin=0.0, global_per_second=10, live_share=0.5, clock=lambda: now[0])
    for channel in range(5):  # five channels, one live edit each: the live share (5 of 10) is used up
        await pacer.acquire(channel, live=True)
    assert pacer.global_delay(live=True) == 1.0 and pacer.global_delay() == 0.0  # other writes still pass
    for channel in range(5, 10):
        await pacer.acquire(channel)
    assert pacer.global_delay() == 1.0
    await pacer.acquire(42, global_budget=False)  # an interaction webhook: exempt, it waits for nothing
    now[0] += 0.5
    assert pacer.global_delay() == 0.5  # ... and took no global slot: the window is still the same ten
    now[0] += 0.5
    assert pacer.global_delay(live=True) == 0.0


async def test_a_write_without_a_channel_takes_only_a_global_slot() -> None:

    now = [0.0]
    pacer = InstantPacer(writes=1, per=5.0, margin=0.0, global_per_second=2, clock=lambda: now[0])
    await pacer.acquire(None)  # e.g. opening a thread
    await pacer.acquire(7)
    assert pacer.delay(7) == 5.0 and pacer.global_delay() == 1.0 and pacer.delay(8) == 0.0


# -- the order waiting writes are served in (a global window of 0.1 s, real time) ----------------------


class QuickGlobal(InstantPacer):
    GLOBAL_WINDOW = 0.1


async def test_waiting_writes_go_by_kind_then_rank_whatever_order_they_asked_in() -> None:
    """Other writes before live edits; a reply that would open with no words after other writes (and
    before it once its words came); live edits oldest-updated first."""
    pacer = QuickGlobal(margin=0.0, global_per_second=1, live_share=1.0)
    await pacer.acquire(None)  # the budget is spent for 0.1 s: everything below waits
    order: list[str] = []
    words = {"P1": False, "P2": False}

    async def write(name: str, **kwargs: object) -> None:
        await pacer.acquire(None, **kwargs)  # type: ignore[arg-type]
        order.append(name)

    asks = [("live, edited at 5", {"live": True, "rank": lambda: 5.0}),
            ("live, edited at 3", {"live": True, "rank": lambda: 3.0}),
            ("P1", {"rank": lambda: 0.0 if words["P1"] else 1.0}),
            ("P2", {"rank": lambda: 0.0 if words["P2"] else 1.0}),
            ("live, edited at 1", {"live": True, "rank": lambda: 1.0}),
            ("final edit", {})]
    tasks = []
    for name, kwargs in asks:
        tasks.append(asyncio.create_task(write(name, **kwargs)))
        await asyncio.sleep(0)  # each asks before the next
    words["P2"] = True  # P2's first words came while it waited
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert order == ["P2", "final edit", "P1", "live, edited at 1", "live, edited at 3", "live, edited at 5"]


async def test_with_a_tiny_budget_live_edits_are_shared_evenly() -> None:
    """Eight answers streaming at once on two live edits per 0.1 s: each gets its turn in order, so the
    time since any answer was last edited stays bounded (no answer waits while others edit twice)."""
    pacer = QuickGlobal(margin=0.0, global_per_second=2, live_share=1.0)
    loop = asyncio.get_running_loop()
    last = dict.fromkeys(range(8), 0.0)
    edits = dict.fromkeys(range(8), 0)

    async def stream(answer: int) -> None:
        while True:
            await pacer.acquire(None, live=True, rank=lambda: last[answer])
            last[answer] = loop.time()
            edits[answer] += 1
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(stream(a)) for a in range(8)]
    await asyncio.sleep(1.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(edits.values()) >= 12 and max(edits.values()) - min(edits.values()) <= 1, edits
    assert not pacer._waiters  # cancelled waiters took nothing and left no trace


def test_a_channels_bucket_is_planned_from_discords_headers() -> None:
    now = [0.0]
    pacer = InstantPacer(writes=5, per=5.0, margin=0.25, clock=lambda: now[0])
    assert pacer.bucket(7) == (5, 5.0 + 0.25)  # before any header: 5 per 5 s
    pacer._window(7).append(now[0])
    pacer.learn(7, limit=3, remaining=2, reset_after=4.0)  # the write that opened a 3-per-4-s window
    assert pacer.bucket(7) == (3, 4.25) and pacer.bucket(8) == (5, 5.25)
    pacer._window(7).extend([0.0, 0.0])
    assert pacer.delay(7) == 4.25  # three writes in the window: the fourth waits for the first to leave
    now[0] = 1.0
    pacer.learn(9, limit=5, remaining=1, reset_after=3.0)  # Discord counts four writes this process never made
    assert pacer.delay(9) == 0.0 and pacer.delay(9, reserve=1) > 0
    pacer.learn(9, limit=5, remaining=0, reset_after=2.5)  # none left until Discord resets the bucket
    assert pacer.delay(9) == 2.5


async def test_a_global_slot_holds_from_its_grant_until_a_window_after_its_answer() -> None:
    """A slot counts from its grant, while its request waits to go out and while it is on its way, until
    a window after Discord's answer: Discord counted the request at some moment before it answered, so
    however late a busy event loop sends a write (or Discord reads it), no second of Discord's holds
    more than the budget. A write never seen going out stops counting after `UNSEEN_AFTER`."""
    now = [0.0]
    pacer = ChannelPacer(margin=0.0, global_per_second=2, clock=lambda: now[0])
    await pacer.acquire(None)
    await pacer.acquire(None)  # two slots granted at 0.0: the budget is spent
    now[0] = 5.0  # long after: neither request has gone out yet, both still count
    assert pacer.global_delay() == ChannelPacer.AWAIT_ANSWERS
    pacer.sent()
    now[0] = 5.3
    pacer.answered()  # Discord answered the first at 5.3: it holds its slot until 6.3
    assert pacer.global_delay() == pytest.approx(1.0)
    now[0] = 6.3
    assert pacer.global_delay() == 0.0
    await pacer.acquire(None)  # the budget is spent again: the new grant and the one never sent
    assert pacer.global_delay() == ChannelPacer.AWAIT_ANSWERS
    now[0] = ChannelPacer.UNSEEN_AFTER + 0.1  # the one granted at 0.0 was never seen going out: it no longer counts
    assert pacer.global_delay() == 0.0


async def test_an_answer_lets_a_waiting_write_go_at_once() -> None:
    pacer = ChannelPacer(margin=0.0, global_per_second=1)
    await pacer.acquire(None)
    pacer.sent()
    waiting = asyncio.create_task(pacer.acquire(None))
    await asyncio.sleep(0.02)
    assert not waiting.done()  # the first is still on its way
    pacer.answered()
    await asyncio.sleep(0)
    assert not waiting.done()  # ... and holds its slot a window more
    await asyncio.wait_for(waiting, 1.5)


async def test_live_edits_get_a_tenth_of_the_budget_while_answers_wait_for_their_first_words() -> None:
    now = [0.0]
    pacer = InstantPacer(margin=0.0, global_per_second=20, live_share=0.8, clock=lambda: now[0])
    pacer.awaiting_words = 1  # a view reports an answer whose words are not shown yet
    for channel in range(2):
        await pacer.acquire(channel, live=True)
    assert pacer.global_delay(live=True) == 1.0 and pacer.global_delay() == 0.0
    pacer.awaiting_words = 0  # its words are shown: live edits have their 80 % again
    assert pacer.global_delay(live=True) == 0.0


async def test_a_placeholder_waits_for_its_words_while_the_budget_is_short() -> None:
    """A reply that would open with no words yet (a placeholder, then an edit: two writes for its first
    words) waits for them while fewer slots are free than answers waiting for their first words; once
    its words come it goes at once. With room to spare, or past its patience, it goes as it is."""
    pacer = QuickGlobal(margin=0.0, global_per_second=4)
    pacer.awaiting_words = 10  # a burst: ten answers wait for their first words, four slots are free
    words = {"A": False, "B": False}
    opened: list[str] = []

    async def reply(name: str) -> None:
        await pacer.acquire(ord(name), wordless=lambda: not words[name])
        opened.append(name)

    a, b = asyncio.create_task(reply("A")), asyncio.create_task(reply("B"))
    await asyncio.sleep(0.05)
    assert opened == []  # both held back, though the budget has room
    words["A"] = True
    pacer.nudge()  # the view tells the pacer when the words come
    await asyncio.sleep(0)
    assert opened == ["A"]
    pacer.awaiting_words = 1  # the burst is over: a placeholder goes as it is
    pacer.nudge()
    await asyncio.wait_for(b, 1)
    assert opened == ["A", "B"]
    await a

    pacer.awaiting_words = 10
    pacer.PLACEHOLDER_PATIENCE = 0.1
    started = time.monotonic()
    await asyncio.wait_for(pacer.acquire(99, wordless=lambda: True), 1)  # a slow model: it opens at last
    assert time.monotonic() - started >= 0.09
