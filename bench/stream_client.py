"""Benchmark: microseconds per streamed chunk, our client against the official `openai` SDK.

Starts the local OpenRouter-speaking server (tests/fakes/openrouter_server.py) in its own process,
streams a recording of N content chunks from it (default 20,000) several times with each client,
and prints the best time per chunk (wall clock and this process's CPU), plus memory use.

    python -m bench.stream_client [--chunks 20000] [--rounds 5]

The `openai` SDK is a bench extra: `pip install -e '.[bench]'`; without it that row is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from bot.logs import configure_logging
from bot.openrouter.client import OpenRouterClient
from bot.openrouter.types import ChatRequest

ROOT = Path(__file__).resolve().parents[1]
REQUEST = ChatRequest(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Go"}])


def start_server(chunks: int, tps: float | None = None) -> tuple[subprocess.Popen[str], str]:
    """The local OpenRouter server in its own process, streaming `chunks` chunks (paced at `tps` tokens a
    second when given): the process and its base URL."""
    pace = ["--tps", str(tps)] if tps else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openrouter_server", "--port", "0", "--chunks", str(chunks), *pace],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the fake server did not start: {url!r}")
    return proc, url


async def ours(url: str) -> int:
    async with OpenRouterClient(api_key="bench", base_url=url) as client:
        count = 0
        async with client.stream_chat(REQUEST) as stream:
            async for _ in stream:
                count += 1
        return count


async def plain_httpx(url: str) -> int:
    """The floor: httpx plus a JSON decode of each `data:` line, nothing else."""
    count = 0
    body = REQUEST.to_body()
    async with httpx.AsyncClient() as client, client.stream("POST", url + "/chat/completions", json=body) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    count += 1
    return count


async def openai_sdk(url: str) -> int:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="bench", base_url=url)
    count = 0
    stream = await client.chat.completions.create(model=REQUEST.model, messages=REQUEST.messages,  # type: ignore[arg-type]
                                                  stream=True)
    async for chunk in stream:  # type: ignore[union-attr]
        if chunk.choices and chunk.choices[0].delta.content:
            count += 1
    await client.close()
    return count


async def measure(fn: Callable[[str], Awaitable[int]], url: str, chunks: int, rounds: int) -> tuple[float, float]:
    best_wall = best_cpu = float("inf")
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        got = await fn(url)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if got != chunks:
            raise SystemExit(f"{fn.__name__}: expected {chunks} chunks, got {got}")
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return best_wall / chunks * 1e6, best_cpu / chunks * 1e6


async def peak_memory(url: str) -> int:
    """Peak bytes allocated by one streamed answer, minus the answer text itself."""
    tracemalloc.start()
    async with OpenRouterClient(api_key="bench", base_url=url) as client:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        async with client.stream_chat(REQUEST) as stream:
            async for _ in stream:
                pass
        peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak - len(stream.completion.content)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configure_logging(level="WARNING", fmt="console")
    proc, url = start_server(args.chunks)
    try:
        rows: list[tuple[str, float, float]] = []
        for name, fn in (("our client", ours), ("plain httpx + json", plain_httpx), ("openai SDK", openai_sdk)):
            try:
                wall, cpu = await measure(fn, url, args.chunks, args.rounds)
            except ImportError:
                print(f"{name}: skipped (pip install -e '.[bench]')")
                continue
            rows.append((name, wall, cpu))
        print(f"{args.chunks} chunks, best of {args.rounds} rounds, server in its own process")
        print(f"{'client':<22}{'µs/chunk (wall)':>18}{'µs/chunk (CPU)':>18}")
        for name, wall, cpu in rows:
            print(f"{name:<22}{wall:>18.1f}{cpu:>18.1f}")
        mine = rows[0][1]
        for name, wall, _ in rows[1:]:
            print(f"our client vs {name}: {wall / mine:.1f}× faster")
    finally:
        proc.kill()
        proc.wait()
    for chunks in (2_000, 20_000, 200_000):
        proc, url = start_server(chunks)
        try:
            extra = await peak_memory(url)
        finally:
            proc.kill()
            proc.wait()
        print(f"memory: {chunks:>7} chunks -> peak {extra / 1024:8.1f} KiB beyond the answer text")


if __name__ == "__main__":
    asyncio.run(main())
