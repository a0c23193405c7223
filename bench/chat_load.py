"""Benchmark: many simultaneous /chat conversations streaming through the real bot.

Three processes, so each one's CPU and memory are its own:

* the fake OpenRouter (tests/fakes/openrouter_server.py, run by this module with ``--serve-openrouter``):
  every answer is ``--tokens`` content chunks of one token (4 characters) each, paced at ``--tps``;
  it prints one JSON line per stream with the moment (CLOCK_MONOTONIC) it started streaming;
* the bot, unmodified: ``python -m tests.discord.bot_process``, configured from environment variables
  as in production, only Discord's addresses redirected to the fake;
* this process: the fake Discord (tests/fakes/discord/, which enforces Discord's limits: 5 writes per
  5 s per channel and 50 requests per second per bot token, answering 429 beyond) and the load driver,
  which sends ``--conversations`` /chat commands at once, from as many users in as many text channels,
  then reads the figures from the fakes' records.

    python -m bench.chat_load [--conversations 100] [--tokens 400] [--tps 50]

Bot CPU is read from /proc/<pid>/stat (utime + stime) just before the commands go out and once every
answer is finished; peak memory is the bot's VmHWM (peak resident set) from /proc/<pid>/status.

``--scenario threads``: the same /chat conversations are only the setup (not measured): once every
thread is open and every first answer final, and ``--drain`` seconds later (Discord's windows empty),
every user posts one follow-up in their thread at once. Measured per thread: the follow-up stored by
the fake Discord -> the first write of the bot's reply that shows answer text (the reply opens with
the words if they came before its slot, else as the "Thinking" placeholder), and the answer's completion;
over the phase: 429s (global and per channel), invalid requests, bot CPU per 1,000 tokens, and peak
memory (VmHWM, reset at the phase's start).

    python -m bench.chat_load --scenario threads --conversations 100 --tokens 300 --tps 50

The bot gets USE_UVLOOP, OPENROUTER_HTTP and DISCORD_WRITES_PER_SECOND from this process's environment
(e.g. ``OPENROUTER_HTTP=httpx python -m bench.chat_load ...``); the fakes' addresses and keys are set here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROMPT_TAG = re.compile(r"bench-conversation-(\d+)")
FOOTER_MARK = "\n-# "
CURSOR = "▌"

# Targets from the issue.
TARGET_FIRST_EDIT_P99_MS = 100.0  # issue 9's targets for 50 /chat at once
TARGET_CHAT_VISIBLE_P99_MS = 250.0
TARGET_429S = 0
TARGET_CPU_PER_1K_TOKENS = 0.08
TARGET_PEAK_MB = 200.0


# ---------------------------------------------------------------------------------------------
# The fake OpenRouter process
# ---------------------------------------------------------------------------------------------


def serve_openrouter(tokens: int, tps: float) -> None:
    """Run the fake OpenRouter until SIGTERM; print its base URL, then one JSON line per stream."""
    from tests.fakes import openrouter_server as fake_openrouter

    def stream_started(start: fake_openrouter.StreamStart) -> None:
        # Told right before the response headers are written; the keep-alive comment and the first
        # content chunk (which has no pacing delay) follow in the same write, so this moment is when
        # the first token leaves the server (well under 1 ms later).
        found = PROMPT_TAG.search(json.dumps(start.body.get("messages", [])[-1:]))
        print(json.dumps({"t": start.at, "conversation": int(found.group(1)) if found else None,
                          "first_piece": start.first_piece, "words": len(start.text.split()),
                          "tokens": start.completion_tokens}), flush=True)

    def request_received(request: fake_openrouter.Recorded) -> None:
        if request.path.endswith("/models"):
            print(json.dumps({"models_request": request.at}), flush=True)

    async def serve() -> None:
        fake = fake_openrouter.FakeOpenRouter()
        fake.stream_chunks = tokens
        fake.chunk_chars = 4  # the fake counts 4 characters as one token, and paces by that
        fake.tokens_per_second = tps
        fake.record_requests = False
        fake.on_stream_start = stream_started
        fake.on_request = request_received
        await fake_openrouter.serve_until_signalled(fake)

    asyncio.run(serve())


@dataclass
class StreamStart:
    t: float  # CLOCK_MONOTONIC when the first token was sent
    first_piece: str
    words: int
    tokens: int


@dataclass
class OpenRouterProcess:
    proc: asyncio.subprocess.Process
    url: str
    starts: dict[int, StreamStart] = field(default_factory=dict)
    models_requests: list[float] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read_records(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            data = json.loads(line)
            if "models_request" in data:
                self.models_requests.append(data["models_request"])
            elif data["conversation"] is not None:
                self.starts[int(data["conversation"])] = StreamStart(
                    t=data["t"], first_piece=data["first_piece"], words=data["words"], tokens=data["tokens"])


async def start_openrouter(tokens: int, tps: float) -> OpenRouterProcess:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.chat_load", "--serve-openrouter", "--tokens", str(tokens), "--tps", str(tps),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the fake OpenRouter did not start: {url!r}")
    server = OpenRouterProcess(proc, url)
    server.reader = asyncio.create_task(server.read_records())
    return server


# ---------------------------------------------------------------------------------------------
# Process figures from /proc
# ---------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; fields[0] is field 3 (state)
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process (thread id -> utime + stime)."""
    result: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            stat = (task / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            result[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return result


def peak_rss_bytes(pid: int) -> int:
    """VmHWM (the peak resident set size) of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc status")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


# ---------------------------------------------------------------------------------------------
# The bot process
# ---------------------------------------------------------------------------------------------


# Bot settings taken from this process's environment (the other DISCORD_* / OPENROUTER_* variables are not
# passed on: the bench sets the addresses and keys itself). USE_UVLOOP passes on like any other variable.
PASSED_SETTINGS = ("DISCORD_WRITES_PER_SECOND", "OPENROUTER_HTTP")


def bot_settings_shown() -> str:
    """The settings under comparison as the bot will see them ("default" where unset)."""
    names = ("USE_UVLOOP", *PASSED_SETTINGS)
    return ", ".join(f"{name}={os.environ.get(name) or 'default'}" for name in names)


async def start_bot(discord_base_url: str, gateway_url: str, openrouter_url: str, workdir: Path,
                    log_file: Path, edit_interval: float, module: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DISCORD_", "OPENROUTER_")) or k in PASSED_SETTINGS} | {
        "FAKE_DISCORD_API": f"{discord_base_url}/api/v10",
        "FAKE_DISCORD_GATEWAY": gateway_url,
        "DISCORD_TOKEN": "bench-discord-token",
        "OPENROUTER_API_KEY": "sk-or-v1-bench-key",
        "OPENROUTER_BASE_URL": openrouter_url,
        "DATABASE_PATH": str(workdir / "bot.sqlite3"),
        "DEFAULT_MODEL": "openai/gpt-4o",
        "STREAM_EDIT_INTERVAL_SECONDS": str(edit_interval),
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    with log_file.open("wb") as out:  # the child keeps its own handle
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, cwd=workdir, env=env,
            stdout=out, stderr=asyncio.subprocess.STDOUT)


async def stop_process(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM,
                       timeout: float = 20) -> None:  # noqa: ASYNC109
    if proc.returncode is not None:
        return
    proc.send_signal(sig)
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def start_py_spy(pid: int, output: str, seconds: float) -> asyncio.subprocess.Process:
    """Sample the bot with py-spy (if installed) for `seconds` of the measured phase: raw collapsed stacks
    to `output`. Without pausing the bot (`--nonblocking`): a paused bot misses Discord's 3 s for /chat."""
    exe = Path(sys.executable).with_name("py-spy")
    return await asyncio.create_subprocess_exec(
        str(exe) if exe.exists() else "py-spy", "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
        "--nonblocking", "--duration", str(max(1, round(seconds))), "--output", output,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def stop_py_spy(profiler: asyncio.subprocess.Process | None) -> None:
    """py-spy writes its file when its duration is over."""
    if profiler is not None:
        try:
            await asyncio.wait_for(profiler.wait(), 60)
        except TimeoutError:
            profiler.kill()


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class Conversation:
    index: int
    user_id: int
    channel_id: int
    interaction: Any = None  # tests.fakes.discord.Interaction


@dataclass
class Results:
    conversations: int
    finished: int
    failures: list[str]
    first_edit_ms: list[float]
    chat_to_first_token_ms: list[float]
    chat_to_visible_ms: list[float]
    defer_ms: list[float]
    edits_per_message: list[int]
    edit_rates: list[float]
    max_writes_5s: int
    rate_limited: int
    global_429s: int
    invalid_requests: int
    rate_limited_kinds: dict[str, int]
    tokens: int
    bot_cpu: float
    bot_cpu_main: float
    bot_cpu_total: float
    bot_peak_bytes: int
    driver_cpu: float
    openrouter_cpu: float
    load_seconds: float
    models_requests: int
    bot_log_problems: list[str]
    workdir: Path


def thread_opened(conv: Conversation) -> bool:
    """The bot opens the conversation's thread after the answer's final edit: it is done with it."""
    inter = conv.interaction
    msg = None if inter is None else inter.message
    return msg is not None and msg.thread_id is not None


@dataclass
class Harness:
    """The three processes' parts, started and ready (the bot has synced its commands)."""

    openrouter: OpenRouterProcess
    discord: Any  # tests.fakes.discord.FakeDiscord
    bot: asyncio.subprocess.Process
    convs: list[Conversation]  # one user and one text channel each
    workdir: Path
    log_file: Path


@contextlib.asynccontextmanager
async def launched(args: argparse.Namespace) -> AsyncIterator[Harness]:
    """Start the fake OpenRouter, the fake Discord and the bot; stop them all on the way out (the fakes'
    records stay readable)."""
    from tests.fakes.discord import FakeDiscord

    workdir = Path(tempfile.mkdtemp(prefix="chat-load-"))
    log_file = workdir / "bot.log"
    openrouter = await start_openrouter(args.tokens, args.tps)
    discord_fake = FakeDiscord()
    await discord_fake.start()
    convs = [Conversation(i, discord_fake.add_user(f"user{i}"), discord_fake.add_text_channel(f"load-{i}"))
             for i in range(args.conversations)]
    bot = await start_bot(discord_fake.base_url, discord_fake.gateway_url, openrouter.url, workdir, log_file,
                          args.edit_interval, args.bot_module)
    try:
        await discord_fake.wait_ready(timeout=60)
        await discord_fake.wait_for(lambda: discord_fake.find_command("chat") is not None, timeout=30)
        await asyncio.sleep(0.5)  # let the bot settle after start-up
        if bot.returncode is not None:
            raise SystemExit(f"the bot exited during start-up ({bot.returncode}); see {log_file}")
        yield Harness(openrouter, discord_fake, bot, convs, workdir, log_file)
    finally:
        await stop_process(bot)
        await stop_process(openrouter.proc)
        if openrouter.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(openrouter.reader, 5)
        await discord_fake.close()


def bot_log_problems(log_file: Path) -> list[str]:
    return [line for line in log_file.read_text(errors="replace").splitlines()
            if line.strip() and "voice will NOT be supported" not in line]  # discord.py's, harmless here


async def run_load(args: argparse.Namespace) -> Results:
    n = args.conversations
    async with launched(args) as h:
        openrouter, discord_fake, bot, convs, workdir, log_file = (
            h.openrouter, h.discord, h.bot, h.convs, h.workdir, h.log_file)
        profiler = await start_py_spy(bot.pid, args.py_spy, args.py_spy_seconds) if args.py_spy else None
        bot_cpu_at_start = cpu_seconds(bot.pid)
        bot_threads_at_start = thread_cpu_seconds(bot.pid)
        or_cpu_at_start = cpu_seconds(openrouter.proc.pid)
        driver_cpu_at_start = time.process_time()
        load_started = time.monotonic()

        async def chat(conv: Conversation) -> None:
            conv.interaction = await discord_fake.slash(
                "chat", {"prompt": f"bench-conversation-{conv.index}: please write a long answer"},
                user_id=conv.user_id, channel_id=conv.channel_id)

        await asyncio.gather(*(chat(c) for c in convs))
        deadline = load_started + args.tokens / args.tps * 3 + 60
        while not all(thread_opened(c) for c in convs):
            if bot.returncode is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        load_seconds = time.monotonic() - load_started
        bot_cpu = cpu_seconds(bot.pid) - bot_cpu_at_start
        threads = thread_cpu_seconds(bot.pid)
        bot_cpu_main = threads.get(bot.pid, 0.0) - bot_threads_at_start.get(bot.pid, 0.0)
        await stop_py_spy(profiler)
        or_cpu = cpu_seconds(openrouter.proc.pid) - or_cpu_at_start
        driver_cpu = time.process_time() - driver_cpu_at_start
        bot_cpu_total = cpu_seconds(bot.pid)
        bot_peak = peak_rss_bytes(bot.pid)

    failures: list[str] = []
    first_edit_ms: list[float] = []
    chat_to_first_token_ms: list[float] = []
    chat_to_visible_ms: list[float] = []
    defer_ms: list[float] = []
    edits_per_message: list[int] = []
    edit_rates: list[float] = []
    max_writes = 0
    tokens = 0
    for conv in convs:
        inter = conv.interaction
        start = openrouter.starts.get(conv.index)
        max_writes = max(max_writes, discord_fake.max_writes_in_window(conv.channel_id))
        if inter is not None and inter.callback_delay is not None:
            defer_ms.append(inter.callback_delay * 1000)
        if not thread_opened(conv) or start is None:
            failures.append(f"conversation {conv.index}: " + ("no stream started" if start is None else
                            f"not finished (callback errors {inter.callback_errors if inter else None})"))
            continue
        msg = inter.message
        parts = [m.content for m in discord_fake.bot_messages(conv.channel_id)]  # the answer, split if long
        if FOOTER_MARK not in "\n" + parts[-1] or any(CURSOR in p for p in parts):
            failures.append(f"conversation {conv.index}: the answer was not finalised")
        parts[-1] = parts[-1].split("\n\n" + FOOTER_MARK.strip("\n"), 1)[0]
        shown = sum(len(p.split()) for p in parts)
        if shown != start.words:
            failures.append(f"conversation {conv.index}: the answer shows {shown} words, {start.words} were sent")
        tokens += start.tokens
        chat_to_first_token_ms.append((start.t - inter.dispatched_at) * 1000)
        visible = words_visible_at(msg, start.first_piece)
        if visible is None:
            failures.append(f"conversation {conv.index}: no edit showed the answer")
            continue
        first_edit_ms.append((visible - start.t) * 1000)
        chat_to_visible_ms.append((visible - inter.dispatched_at) * 1000)
        # Every message the bot wrote in this channel for the answer (one, unless the answer is long).
        for m in discord_fake.bot_messages(conv.channel_id):
            if not m.edit_times:
                continue
            began = start.t if m.id == msg.id else m.created_at
            span = m.edit_times[-1] - began
            edits_per_message.append(len(m.edits))
            if span > 0:
                edit_rates.append(len(m.edits) / span)
    kinds: dict[str, int] = {}
    for _, _, kind in discord_fake.rate_limit_log:
        kinds[kind] = kinds.get(kind, 0) + 1
    problems = bot_log_problems(log_file)
    if bot.returncode != 0:
        failures.append(f"the bot exited with status {bot.returncode}")
    return Results(
        conversations=n, finished=sum(thread_opened(c) for c in convs), failures=failures,
        first_edit_ms=first_edit_ms, chat_to_first_token_ms=chat_to_first_token_ms,
        chat_to_visible_ms=chat_to_visible_ms, defer_ms=defer_ms,
        edits_per_message=edits_per_message, edit_rates=edit_rates, max_writes_5s=max_writes,
        rate_limited=discord_fake.rate_limited_count, global_429s=discord_fake.global_429_count,
        invalid_requests=discord_fake.invalid_requests_in(600), rate_limited_kinds=kinds, tokens=tokens,
        bot_cpu=bot_cpu, bot_cpu_main=bot_cpu_main, bot_cpu_total=bot_cpu_total, bot_peak_bytes=bot_peak,
        driver_cpu=driver_cpu,
        openrouter_cpu=or_cpu, load_seconds=load_seconds,
        models_requests=sum(t >= load_started for t in openrouter.models_requests), bot_log_problems=problems,
        workdir=workdir,
    )


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def report(args: argparse.Namespace, r: Results, total_seconds: float) -> bool:
    cpu_per_1k = r.bot_cpu / (r.tokens / 1000) if r.tokens else math.nan
    peak_mb = r.bot_peak_bytes / 1e6
    p50, p99 = percentile(r.first_edit_ms, 50), percentile(r.first_edit_ms, 99)
    mean_rate = sum(r.edit_rates) / len(r.edit_rates) if r.edit_rates else math.nan
    max_rate = max(r.edit_rates, default=math.nan)
    mean_edits = sum(r.edits_per_message) / len(r.edits_per_message) if r.edits_per_message else math.nan

    print(f"chat load: {args.conversations} conversations at once, {args.tokens} tokens each at {args.tps:g} tokens/s "
          f"(STREAM_EDIT_INTERVAL_SECONDS={args.edit_interval:g}); Discord allows 5 writes / 5 s per channel "
          "and 50 requests / s in all")
    print(f"finished answers: {r.finished}/{r.conversations}; {r.tokens:,} tokens streamed; "
          f"load phase {r.load_seconds:.1f} s (first /chat to last answer finished)")
    visible99 = percentile(r.chat_to_visible_ms, 99)
    rows: list[tuple[str, str, str, bool | None]] = [
        ("/chat -> first visible words, p50", f"{percentile(r.chat_to_visible_ms, 50):.0f} ms", "", None),
        ("/chat -> first visible words, p99", f"{visible99:.0f} ms", f"<= {TARGET_CHAT_VISIBLE_P99_MS:.0f} ms",
         visible99 <= TARGET_CHAT_VISIBLE_P99_MS),
        ("first token -> first visible edit, p50", f"{p50:.0f} ms", "", None),
        ("first token -> first visible edit, p99", f"{p99:.0f} ms", f"<= {TARGET_FIRST_EDIT_P99_MS:.0f} ms",
         p99 <= TARGET_FIRST_EDIT_P99_MS),
        ("edits per message per second, mean", f"{mean_rate:.2f}", "", None),
        ("edits per message per second, max", f"{max_rate:.2f}", "", None),
        ("429s received", f"{r.rate_limited}", f"{TARGET_429S}", r.rate_limited <= TARGET_429S),
        ("bot CPU s per 1,000 tokens", f"{cpu_per_1k:.4f}", f"<= {TARGET_CPU_PER_1K_TOKENS}",
         cpu_per_1k <= TARGET_CPU_PER_1K_TOKENS),
        ("bot peak memory (VmHWM)", f"{peak_mb:.1f} MB", f"< {TARGET_PEAK_MB:.0f} MB", peak_mb < TARGET_PEAK_MB),
    ]
    print_table(rows)

    print("\ndetails:")
    print("  first token = when the fake OpenRouter wrote the stream's first content chunk; first visible edit =")
    print("  when the fake Discord accepted the first edit of the /chat response that contains that chunk")
    print("  (both CLOCK_MONOTONIC, system-wide); /chat = when the fake Discord dispatched the interaction;")
    print("  edits per message per second = the message's edits (live and")
    print("  final) / (its last edit - first token).")
    print(f"  edits per answer message: mean {mean_edits:.1f}; "
          f"most writes to one channel in any 5 s: {r.max_writes_5s}")
    if r.rate_limited_kinds:
        print(f"  429s by kind: {r.rate_limited_kinds}")
    print(f"  429s: {r.global_429s} global, {r.rate_limited - r.global_429s} per channel; invalid requests "
          f"(401/403/429) Discord would count towards its ban (10,000 per 10 min): {r.invalid_requests}")
    print(f"  /chat dispatched -> first token: p50 {percentile(r.chat_to_first_token_ms, 50):.0f} ms, "
          f"p99 {percentile(r.chat_to_first_token_ms, 99):.0f} ms; /chat -> deferred: "
          f"p99 {percentile(r.defer_ms, 99):.0f} ms (Discord's deadline 3000 ms); "
          f"GET /models requests during the load: {r.models_requests}")
    print(f"  bot CPU during the load: {r.bot_cpu:.2f} s (event-loop thread {r.bot_cpu_main:.2f} s, other threads "
          f"{r.bot_cpu - r.bot_cpu_main:.2f} s; {r.bot_cpu_total:.2f} s including start-up); "
          f"fake Discord + driver: {r.driver_cpu:.2f} s; fake OpenRouter: {r.openrouter_cpu:.2f} s; "
          f"machine has {os.cpu_count()} CPUs")
    print_problems(r.bot_log_problems, r.failures)
    if args.py_spy:
        print(f"  profiled with py-spy (adds a little CPU to the bot): {args.py_spy}")
    keep_workdir_if(r.workdir, bool(r.failures or r.bot_log_problems))
    print(f"\ntotal run time: {total_seconds:.1f} s")
    results = [ok for *_, ok in rows if ok is not None]
    return all(results) and not r.failures


# ---------------------------------------------------------------------------------------------
# The thread scenario: one follow-up in every conversation's thread at once
# ---------------------------------------------------------------------------------------------

# Targets from the issue (thread follow-ups).
TARGET_FOLLOWUP_VISIBLE_P99_MS = 2500.0
TARGET_THREAD_CPU_PER_1K_TOKENS = 0.10
WRITES_FLOOR_PER_SECOND = 45  # the bot's default DISCORD_WRITES_PER_SECOND


@dataclass
class FollowUp:
    conv: Conversation
    thread_id: int
    message: Any = None  # tests.fakes.discord.Msg: the user's follow-up


@dataclass
class ThreadResults:
    conversations: int
    threads: int
    finished: int
    failures: list[str]
    visible_ms: list[float]  # follow-up posted -> first edit of the reply showing answer text
    placeholder_ms: list[float]  # follow-up posted -> the reply ("Thinking") created
    first_token_ms: list[float]  # follow-up posted -> the fake OpenRouter sent the first token
    token_to_visible_ms: list[float]  # first token -> first visible words
    done_ms: list[float]  # follow-up posted -> the answer's final edit
    edits_per_reply: list[int]  # accepted edits of each reply's first message (live and final)
    words_only_at_final: int  # replies whose first visible words came with their final edit
    opened_with_words: int  # replies whose first write already carried the answer's first words
    global_429s: int
    route_429s: int
    invalid_requests: int
    setup_429s: int
    max_global_per_second: int  # most authenticated (global-limited) requests in any 1 s of the phase
    global_by_route: dict[str, int]  # the phase's global-limited requests by method and route
    max_writes_5s: int
    tokens: int
    bot_cpu: float
    bot_cpu_main: float
    bot_peak_bytes: int
    peak_is_phase: bool  # VmHWM was reset at the phase's start (else it includes the setup)
    openrouter_cpu: float
    driver_cpu: float
    setup_seconds: float
    phase_seconds: float
    bot_log_problems: list[str]
    workdir: Path


def words_visible_at(msg: Any, piece: str) -> float | None:
    """When the fake Discord accepted the first write of `msg` that shows `piece`: its creation (the
    reply opened with the words) or an edit."""
    if piece in msg.first_content:
        return float(msg.created_at)
    return next((t for text, t in zip(msg.edits, msg.edit_times, strict=True) if piece in text), None)


def reply_messages(discord_fake: Any, f: FollowUp) -> list[Any]:
    """The bot's messages in the thread after the follow-up: its answer (split if long)."""
    return [m for m in discord_fake.bot_messages(f.thread_id) if m.id > f.message.id]


def reply_finished(discord_fake: Any, f: FollowUp) -> bool:
    parts = reply_messages(discord_fake, f)
    return bool(parts) and FOOTER_MARK in "\n" + parts[-1].content and not any(CURSOR in m.content for m in parts)


def reset_peak_rss(pid: int) -> bool:
    """Reset the process's VmHWM to its current resident set (Linux: "5" to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def print_problems(log_problems: Sequence[str], failures: Sequence[str]) -> None:
    if log_problems:
        print(f"  bot logged {len(log_problems)} warning/error line(s); first ones:")
        for line in log_problems[:5]:
            print(f"    {line[:300]}")
    for failure in failures[:10]:
        print(f"  FAILED: {failure}")
    if len(failures) > 10:
        print(f"  ... and {len(failures) - 10} more failures")


def keep_workdir_if(workdir: Path, keep: bool) -> None:
    """The bot's database and log stay for a look when something went wrong, else they go."""
    if keep:
        print(f"  the bot's database and log are kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(rows: Sequence[tuple[str, str, str, bool | None]]) -> None:
    """Figures against their targets: PASS, MISS, or nothing where there is no target."""
    width = max(len(name) for name, *_ in rows)
    print(f"\n{'metric':<{width}}  {'value':>10}  {'target':>10}  result")
    for name, value, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        print(f"{name:<{width}}  {value:>10}  {target:>10}  {verdict}")


async def run_threads(args: argparse.Namespace) -> ThreadResults:
    from tests.fakes.discord.ratelimits import most_in_window

    n = args.conversations
    failures: list[str] = []
    follow_ups: list[FollowUp] = []
    async with launched(args) as h:
        discord_fake, bot, openrouter = h.discord, h.bot, h.openrouter

        # Setup (not measured): /chat in every channel, until every thread is open and every answer final.
        setup_started = time.monotonic()

        async def chat(conv: Conversation) -> None:
            conv.interaction = await discord_fake.slash(
                "chat", {"prompt": f"bench-conversation-{conv.index}: please write a long answer"},
                user_id=conv.user_id, channel_id=conv.channel_id)

        await asyncio.gather(*(chat(c) for c in h.convs))
        deadline = setup_started + args.tokens / args.tps * 3 + 60
        while not all(thread_opened(c) for c in h.convs):
            if bot.returncode is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        setup_seconds = time.monotonic() - setup_started
        follow_ups = [FollowUp(c, c.interaction.message.thread_id) for c in h.convs if thread_opened(c)]
        failures += [f"conversation {c.index}: no thread after /chat" for c in h.convs if not thread_opened(c)]
        await asyncio.sleep(args.drain)  # the bot records the threads; Discord's windows empty
        if bot.returncode is not None:
            raise SystemExit(f"the bot exited during the setup ({bot.returncode}); see {h.log_file}")
        setup_429s = discord_fake.rate_limited_count
        invalid_at_start = len(discord_fake.invalid_requests)
        global_at_start, route_at_start = discord_fake.global_429_count, discord_fake.route_429_count
        requests_at_start, writes_at_start = len(discord_fake.request_log), len(discord_fake.write_log)
        openrouter.starts.clear()  # from here on: the follow-ups' streams

        # Measured: every user posts a follow-up in their thread at once.
        peak_is_phase = reset_peak_rss(bot.pid)
        profiler = await start_py_spy(bot.pid, args.py_spy, args.py_spy_seconds) if args.py_spy else None
        bot_cpu_at_start = cpu_seconds(bot.pid)
        bot_main_at_start = thread_cpu_seconds(bot.pid).get(bot.pid, 0.0)
        or_cpu_at_start = cpu_seconds(openrouter.proc.pid)
        driver_cpu_at_start = time.process_time()
        phase_started = time.monotonic()

        async def follow_up(f: FollowUp) -> None:
            payload = await discord_fake.post_message(
                f.thread_id, f"bench-conversation-{f.conv.index}: and then? please go on", user_id=f.conv.user_id)
            f.message = discord_fake.messages[int(payload["id"])]

        await asyncio.gather(*(follow_up(f) for f in follow_ups))
        deadline = phase_started + args.tokens / args.tps * 3 + 60
        while not all(reply_finished(discord_fake, f) for f in follow_ups):
            if bot.returncode is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        phase_seconds = time.monotonic() - phase_started
        bot_cpu = cpu_seconds(bot.pid) - bot_cpu_at_start
        bot_cpu_main = thread_cpu_seconds(bot.pid).get(bot.pid, 0.0) - bot_main_at_start
        or_cpu = cpu_seconds(openrouter.proc.pid) - or_cpu_at_start
        driver_cpu = time.process_time() - driver_cpu_at_start
        bot_peak = peak_rss_bytes(bot.pid)
        await asyncio.sleep(0.2)  # the last stream-start lines reach the reader
        await stop_py_spy(profiler)

    visible_ms: list[float] = []
    placeholder_ms: list[float] = []
    first_token_ms: list[float] = []
    token_to_visible_ms: list[float] = []
    done_ms: list[float] = []
    edits_per_reply: list[int] = []
    tokens = finished = words_only_at_final = opened_with_words = 0
    for f in follow_ups:
        index = f.conv.index
        start = openrouter.starts.get(index)
        parts = reply_messages(discord_fake, f)
        if start is None:
            failures.append(f"conversation {index}: no stream started for the follow-up")
            continue
        posted = f.message.created_at
        first_token_ms.append((start.t - posted) * 1000)
        if not parts:
            failures.append(f"conversation {index}: no reply to the follow-up")
            continue
        placeholder_ms.append((parts[0].created_at - posted) * 1000)
        edits_per_reply.append(len(parts[0].edits))
        visible = words_visible_at(parts[0], start.first_piece)
        opened_with_words += start.first_piece in parts[0].first_content
        if visible is None:
            failures.append(f"conversation {index}: no edit showed the answer")
        else:
            visible_ms.append((visible - posted) * 1000)
            words_only_at_final += bool(parts[0].edit_times) and visible == parts[0].edit_times[-1] and len(parts) == 1
            token_to_visible_ms.append((visible - start.t) * 1000)
        if not reply_finished(discord_fake, f):
            failures.append(f"conversation {index}: the answer was not finalised")
            continue
        texts = [m.content for m in parts]
        texts[-1] = texts[-1].split("\n\n" + FOOTER_MARK.strip("\n"), 1)[0]
        shown = sum(len(t.split()) for t in texts)
        if shown != start.words:
            failures.append(f"conversation {index}: the answer shows {shown} words, {start.words} were sent")
            continue
        finished += 1
        tokens += start.tokens
        done_ms.append((max(m.edit_times[-1] if m.edit_times else m.created_at for m in parts) - posted) * 1000)

    limited = [(t, method, path) for t, method, path, _ in discord_fake.request_log[requests_at_start:]
               if path.startswith("/api/") and not path.startswith(("/api/v10/interactions/", "/api/v10/webhooks/"))]
    requests = [t for t, _, _ in limited]
    by_route: dict[str, int] = {}
    for _, method, path in limited:
        route = f"{method} {re.sub(r'/[0-9]+', '/{id}', path)}"
        by_route[route] = by_route.get(route, 0) + 1
    writes = discord_fake.write_log[writes_at_start:]
    max_writes = max((most_in_window([t for t, c, k in writes if c == f.thread_id and k != "callback"], 5.0)
                      for f in follow_ups), default=0)
    if h.bot.returncode != 0:
        failures.append(f"the bot exited with status {h.bot.returncode}")
    return ThreadResults(
        conversations=n, threads=len(follow_ups), finished=finished, failures=failures, visible_ms=visible_ms,
        placeholder_ms=placeholder_ms, first_token_ms=first_token_ms, token_to_visible_ms=token_to_visible_ms,
        done_ms=done_ms, edits_per_reply=edits_per_reply, words_only_at_final=words_only_at_final,
        opened_with_words=opened_with_words,
        global_429s=discord_fake.global_429_count - global_at_start,
        route_429s=discord_fake.route_429_count - route_at_start,
        invalid_requests=len(discord_fake.invalid_requests) - invalid_at_start, setup_429s=setup_429s,
        max_global_per_second=most_in_window(requests, 1.0), global_by_route=by_route, max_writes_5s=max_writes,
        tokens=tokens,
        bot_cpu=bot_cpu, bot_cpu_main=bot_cpu_main, bot_peak_bytes=bot_peak, peak_is_phase=peak_is_phase,
        openrouter_cpu=or_cpu, driver_cpu=driver_cpu, setup_seconds=setup_seconds, phase_seconds=phase_seconds,
        bot_log_problems=bot_log_problems(h.log_file), workdir=h.workdir,
    )


def report_threads(args: argparse.Namespace, r: ThreadResults, total_seconds: float) -> bool:
    def pct(values: Sequence[float], p: float) -> str:
        return f"{percentile(values, p):.0f} ms"

    cpu_per_1k = r.bot_cpu / (r.tokens / 1000) if r.tokens else math.nan
    p99 = percentile(r.visible_ms, 99)
    floor_s = r.threads / WRITES_FLOOR_PER_SECOND
    print(f"thread load: {args.conversations} conversations, then one follow-up in each thread at once, "
          f"{args.tokens} tokens each at {args.tps:g} tokens/s (STREAM_EDIT_INTERVAL_SECONDS={args.edit_interval:g}; "
          f"{bot_settings_shown()}); Discord allows 5 writes / 5 s per channel and 50 requests / s in all")
    print(f"setup (not measured): {r.threads}/{r.conversations} threads open in {r.setup_seconds:.1f} s, "
          f"{r.setup_429s} 429s, then {args.drain:g} s for Discord's windows to empty")
    print(f"finished answers: {r.finished}/{r.threads}; {r.tokens:,} tokens streamed; measured phase "
          f"{r.phase_seconds:.1f} s (follow-ups posted to last answer final)")
    rows: list[tuple[str, str, str, bool | None]] = [
        ("answers completed", f"{r.finished}/{r.conversations}", "all", r.finished == r.conversations),
        ("message -> first visible words, p50", pct(r.visible_ms, 50), "", None),
        ("message -> first visible words, p99", f"{p99:.0f} ms", f"<= {TARGET_FOLLOWUP_VISIBLE_P99_MS:.0f} ms",
         p99 <= TARGET_FOLLOWUP_VISIBLE_P99_MS),
        ("global 429s", f"{r.global_429s}", f"{TARGET_429S}", r.global_429s <= TARGET_429S),
        ("per-channel 429s", f"{r.route_429s}", f"{TARGET_429S}", r.route_429s <= TARGET_429S),
        ("bot CPU s per 1,000 tokens", f"{cpu_per_1k:.4f}", f"<= {TARGET_THREAD_CPU_PER_1K_TOKENS}",
         cpu_per_1k <= TARGET_THREAD_CPU_PER_1K_TOKENS),
        ("bot peak memory (VmHWM)", f"{r.bot_peak_bytes / 1e6:.1f} MB", "", None),
    ]
    print_table(rows)

    print("\ndetails:")
    print("  message = when the fake Discord stored the user's follow-up (and dispatched MESSAGE_CREATE);")
    print("  first visible words = when it accepted the first write of the bot's reply that contains the")
    print("  answer's first chunk (its creation, or a later edit); all CLOCK_MONOTONIC.")
    print(f"  floor: {r.threads} new reply messages at {WRITES_FLOOR_PER_SECOND} writes/s take "
          f"{floor_s * 1000:.0f} ms")
    print(f"  message -> reply created: p50 {pct(r.placeholder_ms, 50)}, p99 {pct(r.placeholder_ms, 99)}")
    print(f"  message -> first token sent by OpenRouter: p50 {pct(r.first_token_ms, 50)}, "
          f"p99 {pct(r.first_token_ms, 99)}")
    print(f"  first token -> first visible words: p50 {pct(r.token_to_visible_ms, 50)}, "
          f"p99 {pct(r.token_to_visible_ms, 99)}")
    mean_edits = sum(r.edits_per_reply) / len(r.edits_per_reply) if r.edits_per_reply else math.nan
    print(f"  edits per reply (live and final): mean {mean_edits:.1f}, fewest {min(r.edits_per_reply, default=0)}; "
          f"replies whose first words came only with the final edit: {r.words_only_at_final}; replies that "
          f"opened with the words (no placeholder): {r.opened_with_words}")
    print(f"  message -> answer final: p50 {pct(r.done_ms, 50)}, p99 {pct(r.done_ms, 99)} "
          f"(streaming alone takes {args.tokens / args.tps * 1000:.0f} ms)")
    print(f"  invalid requests (401/403/429) during the phase: {r.invalid_requests}; most global-limited requests "
          f"in any 1 s: {r.max_global_per_second} (Discord: 50); most writes to one thread in any 5 s: "
          f"{r.max_writes_5s}")
    print("  global-limited requests by route: " + ", ".join(f"{k} {v}" for k, v in sorted(r.global_by_route.items())))
    print(f"  bot CPU during the phase: {r.bot_cpu:.2f} s (event-loop thread {r.bot_cpu_main:.2f} s, other threads "
          f"{r.bot_cpu - r.bot_cpu_main:.2f} s); fake Discord + driver: {r.driver_cpu:.2f} s; fake OpenRouter: "
          f"{r.openrouter_cpu:.2f} s; machine has {os.cpu_count()} CPUs")
    print("  bot peak memory: " + ("during the measured phase (VmHWM reset at its start)" if r.peak_is_phase
                                   else "since the bot started (VmHWM could not be reset)"))
    print_problems(r.bot_log_problems, r.failures)
    keep_workdir_if(r.workdir, bool(r.failures or r.bot_log_problems))
    print(f"\ntotal run time: {total_seconds:.1f} s")
    return all(ok for *_, ok in rows if ok is not None) and not r.failures and r.invalid_requests == 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chat_load", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("chat", "threads"), default="chat",
                        help="chat (default): N /chat conversations at once; threads: N conversations set up "
                             "first, then one follow-up message in every thread at once, measured")
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=400, help="tokens per answer (one 4-character chunk each)")
    parser.add_argument("--tps", type=float, default=50.0, help="tokens per second of each stream")
    parser.add_argument("--edit-interval", type=float, default=1.0,
                        help="the bot's STREAM_EDIT_INTERVAL_SECONDS (default: the production default, 1.0)")
    parser.add_argument("--bot-module", default="tests.discord.bot_process",
                        help="module that runs the bot (to try out a change without touching bot/)")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="profile the bot during the measured phase with py-spy (raw collapsed stacks)")
    parser.add_argument("--py-spy-seconds", type=float, default=10.0,
                        help="how long py-spy samples from the phase's start (default 10 s)")
    parser.add_argument("--drain", type=float, default=6.0,
                        help="threads: seconds between the setup and the follow-ups (Discord's windows empty)")
    parser.add_argument("--serve-openrouter", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_openrouter:
        serve_openrouter(args.tokens, args.tps)
        return 0
    started = time.monotonic()
    if args.scenario == "threads":
        thread_results = asyncio.run(run_threads(args))
        ok = report_threads(args, thread_results, time.monotonic() - started)
    else:
        results = asyncio.run(run_load(args))
        ok = report(args, results, time.monotonic() - started)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
