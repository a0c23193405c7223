"""Runs the bot: services, the Discord client, crash recovery, and a clean shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import discord

from bot.core import Core
from bot.discord.bot import ChatBot
from bot.logs import get_logger
from bot.metrics import Metrics
from bot.metrics_http import MetricsEndpoint
from bot.services import Services
from bot.settings import Settings
from bot.shards import ALL_SHARDS, ShardScope
from bot.store.conversations import Turn

log = get_logger(__name__)


@contextlib.contextmanager
def stopping_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` while the bot runs (where the loop supports signal handlers)."""
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        yield
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def after_login(services: Services, bot: ChatBot, interrupted: list[Turn], ready: asyncio.Event | None,
                      scope: ShardScope = ALL_SHARDS) -> None:
    """Load the models catalogue, then, once connected, mark in Discord the answers a crash cut."""
    try:
        await services.catalogue.ensure_loaded()
    except Exception as exc:  # the bot still starts; the catalogue loads on first use
        log.warning("could not load the models catalogue at start", error=repr(exc))
    await bot.wait_until_ready()
    await bot.mark_interrupted(interrupted)
    await bot.show_again(await bot.core.unshown_answers(scope))
    if ready is not None:
        ready.set()


class MetricsUnavailable(Exception):
    """METRICS_HOST:METRICS_PORT cannot be listened on (taken, or not an address of this machine)."""


async def serve_metrics(settings: Settings, metrics: Metrics) -> MetricsEndpoint | None:
    """Prometheus' endpoint, when METRICS_PORT is set."""
    if settings.metrics_port is None:
        return None
    endpoint = MetricsEndpoint(metrics, host=settings.metrics_host, port=settings.metrics_port)
    try:
        await endpoint.start()
    except OSError as exc:
        raise MetricsUnavailable(f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: "
                                 f"{exc.strerror or exc}") from None
    log.info("serving metrics", url=f"http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    return endpoint


def log_shards(settings: Settings, scope: ShardScope) -> None:
    """Say which shards this process runs, its share of the write budget, and whether it answers DMs."""
    log.info("shards", shard_count=settings.shard_count or "recommended by Discord",
             shard_ids=settings.shard_ids or "all", writes_per_second=settings.process_writes_per_second,
             answers_direct_messages=scope.answers_dms)


async def until_stopped(runner: asyncio.Task[None], stop: asyncio.Event) -> int:
    """Wait for `stop` or for the Discord client to end; the exit status."""
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    exc = runner.exception() if runner in done else None
    if exc is None:
        return 0
    if isinstance(exc, discord.LoginFailure):
        log.error("Discord rejected the token: check DISCORD_TOKEN")
    else:
        log.error("the Discord client stopped", error=repr(exc), exc_info=exc)
    return 1


async def run(settings: Settings, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None,
              client_options: dict[str, Any] | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set). Returns the exit status."""
    log.info("starting", event_loop=type(asyncio.get_running_loop()).__module__)
    services = await Services.start(settings)
    try:
        endpoint = await serve_metrics(settings, services.metrics)
    except MetricsUnavailable:
        await services.close()
        raise
    core = Core.build(services)
    bot = ChatBot(settings, core, **(client_options or {}))
    scope = ShardScope.from_settings(settings)
    log_shards(settings, scope)
    with stopping_on_signals(stop := stop or asyncio.Event()):
        interrupted = await core.recover(scope)
        runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()), name="discord")
        recovery = asyncio.create_task(after_login(services, bot, interrupted, ready, scope), name="recovery")
        try:
            status = await until_stopped(runner, stop)
            log.info("shutting down")
            await core.shutdown(grace=3.0)
        finally:
            recovery.cancel()
            await bot.close()
            with contextlib.suppress(BaseException):
                await runner
            if endpoint is not None:
                await endpoint.close()
            await services.close()
            log.info("stopped")
    return status
