"""Benchmark: this process's CPU per streamed chunk while many answers trickle in at once.

`bench.stream_client` measures one fast stream (many chunks per network read). A busy bot sees the
opposite: many answers at once, each at a model's pace, one chunk per network write. Here the local
OpenRouter-speaking server (tests/fakes/openrouter_server.py, in its own process) streams `--streams`
answers at once, each `--tokens` chunks of one token at `--tps` tokens per second, a write per chunk;
this process reads them through the bot's own path (`OpenRouterClient` -> `ChatStream` ->
`AnswerStreamer`, into a view that only keeps the text) and prints its CPU time per chunk.

    python -m bench.stream_trickle [--streams 100] [--tokens 300] [--tps 50] [--rounds 2] [--http aiohttp]
                                   [--loop uvloop|asyncio] [--gather 0.1]

The event loop is the bot's (`bot.__main__.event_loop_factory`: uvloop's where installed) unless `--loop asyncio`.

The machine's other load shows in the figures: run it on a quiet machine, and compare runs made alike.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Literal, cast

from bench.stream_client import REQUEST, start_server
from bot.__main__ import event_loop_factory
from bot.chat.active import ActiveAnswer
from bot.chat.stream import AnswerStreamer
from bot.logs import configure_logging
from bot.openrouter.client import OpenRouterClient, Timeouts
from bot.openrouter.types import ChatRequest
from bot.states import NoticeKind, TurnStatus
from bot.store.conversations import ConversationRepo


class TextView:
    """The core's `AnswerView` reduced to keeping the text (the Discord view's `append` does little more)."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.appends = 0

    def begin(self, opened: object) -> None: ...

    def message_ids(self) -> list[int]:
        return []

    def append(self, content: str, reasoning: str) -> None:
        self.appends += 1
        if content:
            self.content.append(content)

    async def notice(self, text: str, kind: NoticeKind = NoticeKind.NOTE) -> None: ...

    async def finish(self, outcome: object) -> bool:
        return True


class NoStore:
    """Progress saves go nowhere: the store's cost is not this benchmark's."""

    async def save_progress(self, turn_id: int, content: str, generation_id: str | None) -> None: ...


async def one_round(streamer: AnswerStreamer, streams: int, request: ChatRequest,
                    tokens: int) -> tuple[float, float, int]:
    """Stream `streams` answers at once: (wall seconds, CPU seconds, view appends)."""
    views = [TextView() for _ in range(streams)]
    wall, cpu = time.perf_counter(), time.process_time()
    results = await asyncio.gather(*(streamer.run(request, view, ActiveAnswer(turn_id=i + 1, asker_id=None, view=view))
                                     for i, view in enumerate(views)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for result, view in zip(results, views, strict=True):
        if result.status != TurnStatus.COMPLETE or len("".join(view.content)) != tokens * 4:
            raise SystemExit(f"a stream ended {result.status}: {result.error!r}, {len(''.join(view.content))} chars")
    return wall, cpu, sum(v.appends for v in views)


async def run(args: argparse.Namespace) -> None:
    configure_logging(level="WARNING", fmt="console")
    proc, url = start_server(args.tokens, args.tps)
    chunks = args.streams * args.tokens
    try:
        async with OpenRouterClient(api_key="bench", base_url=url, timeouts=Timeouts(gather=args.gather),
                                    transport=cast(Literal["aiohttp", "httpx"], args.http)) as client:
            streamer = AnswerStreamer(client=client, repo=cast(ConversationRepo, NoStore()), progress_save_interval=3.0)
            print(f"{args.streams} streams at once, {args.tokens} chunks each at {args.tps:g} tokens/s "
                  f"({args.http}, {type(asyncio.get_running_loop()).__module__}); server in its own process")
            print(f"{'round':<8}{'wall s':>9}{'CPU s':>9}{'µs/chunk (CPU)':>17}{'chunks/append':>15}")
            for round_no in range(1, args.rounds + 1):
                wall, cpu, appends = await one_round(streamer, args.streams, REQUEST, args.tokens)
                print(f"{round_no:<8}{wall:>9.2f}{cpu:>9.2f}{cpu / chunks * 1e6:>17.1f}{chunks / appends:>15.1f}")
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--http", choices=["aiohttp", "httpx"], default="aiohttp")
    parser.add_argument("--gather", type=float, default=Timeouts().gather,
                        help="seconds a trickling stream gathers between reads (the bot's STREAM_READ_GATHER_SECONDS)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=event_loop_factory(args.loop == "uvloop")) as runner:
        runner.run(run(args))


if __name__ == "__main__":
    main()
