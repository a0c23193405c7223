"""The answers streaming now: one per conversation at a time, found by message, stopped, waited for."""

from __future__ import annotations

import asyncio

from bot.chat.active import ActiveAnswer, ActiveAnswers
from tests.core_harness import RecordingView


async def test_one_answer_at_a_time_per_conversation() -> None:
    active = ActiveAnswers()
    assert not active.busy(1)
    async with active.lock_for(1):
        assert active.busy(1) and not active.busy(2)
    assert not active.busy(1)


async def test_found_by_message_stopped_once_and_forgotten_when_done() -> None:
    active = ActiveAnswers()
    view = RecordingView(ids=[501, 502])
    answer = ActiveAnswer(turn_id=9, asker_id=3, view=view, task=asyncio.create_task(asyncio.sleep(10)))
    with active.running(answer):
        assert active.find(502) is answer and active.find(999) is None
        assert active.stop(answer, by=4) and answer.stopped_by == 4
        await asyncio.gather(answer.task, return_exceptions=True)  # type: ignore[arg-type]
        assert not active.stop(answer, by=4)  # already over
    assert active.find(502) is None and len(active) == 0


async def test_shutdown_lets_answers_finish_then_stops_the_rest() -> None:
    active = ActiveAnswers()

    async def answer(turn_id: int, seconds: float) -> None:
        task = asyncio.create_task(asyncio.sleep(seconds))
        with active.running(ActiveAnswer(turn_id, 1, RecordingView(), task=task)):
            await asyncio.gather(task, return_exceptions=True)

    quick, slow = asyncio.create_task(answer(1, 0.05)), asyncio.create_task(answer(2, 60))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(active.shutdown(grace=0.2), 5)
    assert quick.done() and slow.done() and len(active) == 0


async def test_a_stop_before_the_request_goes_out_is_remembered() -> None:
    active = ActiveAnswers()
    answer = ActiveAnswer(turn_id=0, asker_id=3, view=RecordingView())
    assert not active.stop(answer, by=3)  # not running: nothing to stop
    with active.running(answer):
        assert active.stop(answer, by=3) and answer.stop_requested and answer.stopped_by == 3
