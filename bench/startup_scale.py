"""Benchmark: the bot starting in 10,000 guilds, sharded.

Two processes: this one runs the fake Discord (tests/fakes/discord/, which shards as Discord does: one
IDENTIFY per 5 s per ``max_concurrency`` bucket, INVALID_SESSION past it, 4011 for a session of more
than 2,500 guilds) with ``--guilds`` guilds, and the fake OpenRouter; the other is the real bot
(``python -m tests.discord.bot_process``, configured from environment variables as in production).

As soon as a shard is READY (its READY and GUILD_CREATEs were written to the bot), the driver sends a
/chat in one guild of that shard. Measured from the moment the bot process is started: when each shard
became READY, when each shard's /chat was acknowledged (the interaction callback) and answered (the
final edit), and the bot's peak resident memory (VmHWM) once every shard answered.

    python -m bench.startup_scale [--guilds 10000] [--shard-count N] [--max-concurrency 1]
                                  [--channels 1] [--roles 0]

Without ``--shard-count`` the bot uses the count Discord recommends (GET /gateway/bot: one shard per
1,000 guilds); ``--shard-count 4`` sets SHARD_COUNT=4. Run it once each way for the README figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FOOTER_MARK = "\n-# "
TARGET_PEAK_MB = 300.0
TARGET_SECONDS = {None: 60.0, 4: 25.0}  # recommended shard count: 60 s; SHARD_COUNT=4: 25 s


@dataclass
class ShardRun:
    shard_id: int
    guild_id: int
    ready_at: float  # seconds from the bot's start
    interaction: Any = None  # tests.fakes.discord.Interaction
    acked_at: float | None = None
    answered_at: float | None = None


@dataclass
class Run:
    shard_count: int = 0
    shards: dict[int, ShardRun] = field(default_factory=dict)
    peak_rss_bytes: int = 0
    failures: list[str] = field(default_factory=list)


def peak_rss_bytes(pid: int) -> int:
    """VmHWM (the peak resident set size) of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc status")


async def start_bot(discord_fake: Any, openrouter_url: str, workdir: Path, args: argparse.Namespace,
                    log_file: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OPENROUTER_", "SHARD_"))} | {
        "FAKE_DISCORD_API": f"{discord_fake.base_url}/api/v10",
        "FAKE_DISCORD_GATEWAY": discord_fake.gateway_url,
        "DISCORD_TOKEN": "bench-discord-token",
        "OPENROUTER_API_KEY": "sk-or-v1-bench-key",
        "OPENROUTER_BASE_URL": openrouter_url,
        "DATABASE_PATH": str(workdir / "bot.sqlite3"),
        "DEFAULT_MODEL": "openai/gpt-4o",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    if args.shard_count is not None:
        env["SHARD_COUNT"] = str(args.shard_count)
    with log_file.open("wb") as out:
        return await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.discord.bot_process", cwd=workdir,
                                                    env=env, stdout=out, stderr=asyncio.subprocess.STDOUT)


def answered(discord_fake: Any, inter: Any) -> bool:
    msg = inter.message
    return msg is not None and FOOTER_MARK in "\n" + msg.content and "▌" not in msg.content


async def drive(discord_fake: Any, run: Run, started: float, user_id: int, deadline: float) -> None:
    """Send a /chat to each shard as it becomes READY; wait until every shard's is answered."""
    from tests.fakes.discord.state import shard_of

    first_guild: dict[int, int] = {}
    while time.monotonic() < deadline:
        count = run.shard_count or max((c for _, c in (p.get("shard") or (0, 1) for p in
                                                        discord_fake.identify_payloads)), default=0)
        if count and not first_guild:
            run.shard_count = count
            for guild_id in discord_fake.guild_ids:
                first_guild.setdefault(shard_of(guild_id, count), guild_id)
        for shard_id, ready in list(discord_fake.ready_shards.items()):
            if shard_id not in run.shards and discord_fake.find_command("chat") is not None:
                guild_id = first_guild[shard_id]
                shard = run.shards[shard_id] = ShardRun(shard_id, guild_id, ready - started)
                shard.interaction = await discord_fake.slash(
                    "chat", {"prompt": f"hello shard {shard_id}"}, user_id=user_id,
                    channel_id=discord_fake.text_channel_of(guild_id))
        now = time.monotonic() - started
        for shard in run.shards.values():
            if shard.acked_at is None and shard.interaction.response_type is not None:
                shard.acked_at = shard.interaction.dispatched_at - started + (shard.interaction.callback_delay or 0)
            if shard.answered_at is None and answered(discord_fake, shard.interaction):
                shard.answered_at = now
        if run.shard_count and len(run.shards) == run.shard_count and all(
                s.answered_at is not None for s in run.shards.values()):
            return
        await asyncio.sleep(0.02)
    run.failures.append("timed out before every shard answered its /chat")


async def measure(args: argparse.Namespace) -> Run:
    from tests.fakes.discord import FakeDiscord
    from tests.fakes.openrouter_server import FakeOpenRouter

    workdir = Path(tempfile.mkdtemp(prefix="startup-scale-"))
    log_file = workdir / "bot.log"
    discord_fake = FakeDiscord(max_concurrency=args.max_concurrency)
    openrouter = FakeOpenRouter()
    openrouter.record_requests = False
    await discord_fake.start()
    await openrouter.start()
    built = time.monotonic()
    for _ in range(args.guilds - 1):
        discord_fake.add_guild(channels=args.channels, roles=args.roles)
    user_id = discord_fake.add_user("alice")
    print(f"fake Discord: {len(discord_fake.guild_ids)} guilds built in {time.monotonic() - built:.1f} s")
    run = Run()
    started = time.monotonic()
    bot = await start_bot(discord_fake, openrouter.base_url, workdir, args, log_file)
    try:
        await drive(discord_fake, run, started, user_id, started + args.timeout)
        run.peak_rss_bytes = peak_rss_bytes(bot.pid) if bot.returncode is None else 0
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(bot.wait(), 30)
        if bot.returncode is None:
            bot.kill()
        await openrouter.close()
        await discord_fake.close()
    run.failures += collect_failures(discord_fake, run, bot.returncode)
    if run.failures:
        print(f"bot log kept in {log_file}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return run


def collect_failures(discord_fake: Any, run: Run, returncode: int | None) -> list[str]:
    failures = []
    if discord_fake.identify_refused:
        failures.append(f"IDENTIFYs refused (over max_concurrency): {len(discord_fake.identify_refused)}")
    if discord_fake.closed_with:
        failures.append(f"sessions closed by the gateway: {discord_fake.closed_with}")
    if discord_fake.invalid_requests:
        failures.append(f"invalid requests (401/403/429): {len(discord_fake.invalid_requests)}")
    for shard in run.shards.values():
        if shard.interaction.callback_errors:
            failures.append(f"shard {shard.shard_id}: /chat callback refused {shard.interaction.callback_errors}")
    if returncode not in (0, None):
        failures.append(f"the bot exited with {returncode}")
    return failures


def report(args: argparse.Namespace, run: Run) -> bool:
    shards = sorted(run.shards.values(), key=lambda s: s.ready_at)
    print(f"\nbot in {args.guilds} guilds ({args.channels} channels, {args.roles + 2} roles each), "
          f"{'SHARD_COUNT=' + str(args.shard_count) if args.shard_count else 'recommended shard count'}: "
          f"{run.shard_count} shards, max_concurrency {args.max_concurrency}")
    print(f"{'shard':>5} {'READY s':>8} {'/chat acked s':>14} {'/chat answered s':>17}")
    for s in shards:
        acked = f"{s.acked_at:.1f}" if s.acked_at is not None else "-"
        done = f"{s.answered_at:.1f}" if s.answered_at is not None else "-"
        print(f"{s.shard_id:>5} {s.ready_at:>8.1f} {acked:>14} {done:>17}")
    done = [s.answered_at for s in shards if s.answered_at is not None]
    target = TARGET_SECONDS.get(args.shard_count)
    peak_mb = run.peak_rss_bytes / 1e6
    first, last = (min(done), max(done)) if done else (float("nan"), float("nan"))
    print(f"first /chat answered: {first:.1f} s after the bot started")
    print(f"every shard answering (last shard's /chat answered): {last:.1f} s"
          + (f" (target {target:.0f} s: {'met' if last <= target else 'MISSED'})" if target else ""))
    print(f"bot peak memory (VmHWM): {peak_mb:.0f} MB (target {TARGET_PEAK_MB:.0f} MB: "
          f"{'met' if peak_mb <= TARGET_PEAK_MB else 'MISSED'})")
    for failure in run.failures:
        print(f"PROBLEM: {failure}")
    return not run.failures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guilds", type=int, default=10_000)
    parser.add_argument("--shard-count", type=int, default=None, help="SHARD_COUNT (default: Discord's recommendation)")
    parser.add_argument("--max-concurrency", type=int, default=1, help="what GET /gateway/bot reports")
    parser.add_argument("--channels", type=int, default=1, help="text channels per guild (all but one only "
                        "listed in GUILD_CREATE, to give it a real server's size)")
    parser.add_argument("--roles", type=int, default=0, help="roles per guild beyond @everyone and the bot's")
    parser.add_argument("--timeout", type=float, default=180.0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run = asyncio.run(measure(args))
    return 0 if report(args, run) else 1


if __name__ == "__main__":
    sys.exit(main())
