"""The process's long-lived parts, built once from the settings and closed on shutdown.

Nothing here imports discord.py: the Discord layer receives a `Services` and translates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.metrics import Metrics
from bot.openrouter.catalogue import ModelCatalogue
from bot.openrouter.client import OpenRouterClient, Timeouts
from bot.openrouter.retry import RetryPolicy
from bot.settings import Settings
from bot.store.connect import database_for
from bot.store.database import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    openrouter: OpenRouterClient
    catalogue: ModelCatalogue
    metrics: Metrics = field(default_factory=Metrics)  # one per process; served by the runner

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        db = database_for(settings.database_location)
        await db.open()
        try:
            await db.migrate()
        except BaseException:
            await db.close()
            raise
        client = OpenRouterClient(
            api_key=settings.openrouter_api_key.get_secret_value(),
            base_url=settings.base_url,
            app_url=settings.app_url,
            app_title=settings.app_title,
            timeouts=Timeouts(connect=settings.connect_timeout_seconds,
                              first_byte=settings.first_byte_timeout_seconds,
                              idle=settings.idle_timeout_seconds, total=settings.stream_max_seconds,
                              idle_content=settings.stream_idle_content_seconds,
                              gather=settings.stream_read_gather_seconds),
            retry=RetryPolicy(max_retries=settings.request_max_retries,
                              budget=settings.request_retry_budget_seconds),
            transport=settings.openrouter_http,
        )
        catalogue = ModelCatalogue(client.list_models, ttl=settings.models_cache_ttl_seconds)
        return cls(settings=settings, db=db, openrouter=client, catalogue=catalogue)

    async def close(self) -> None:
        await self.catalogue.close()
        await self.openrouter.aclose()
        await self.db.close()
