"""Serves `Metrics` to Prometheus over HTTP (`GET /metrics`), inside the bot's own event loop.

No thread of its own: a scrape runs on the loop, so the numbers read at scrape time (answers in
progress, Discord's rolling window) are read where they are written.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from bot.metrics import Metrics


class MetricsEndpoint:
    def __init__(self, metrics: Metrics, *, host: str, port: int) -> None:
        self.host = host
        self.port = port
        app = web.Application()
        app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def start(self) -> None:
        """Listen on host:port; raises `OSError` when it cannot (e.g. the port is taken)."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise

    async def close(self) -> None:
        await self._runner.cleanup()
