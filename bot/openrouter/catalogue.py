"""OpenRouter's models catalogue, cached with a TTL and refreshed in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

from bot.logs import get_logger
from bot.openrouter.errors import OpenRouterError
from bot.openrouter.types import ModelInfo

log = get_logger(__name__)


class ModelCatalogue:
    """The list of models with their prices and abilities.

    `get()`/`all()` never wait on the network once loaded: a stale catalogue is refreshed in the
    background, and a failed refresh keeps the last good one.
    """

    RETRY_AFTER_FAILURE = 60.0

    def __init__(self, fetch: Callable[[], Awaitable[list[ModelInfo]]], *, ttl: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._models: dict[str, ModelInfo] = {}
        self._loaded_at: float | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._failed_at: float | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded_at is not None

    @property
    def stale(self) -> bool:
        return self._loaded_at is None or self._clock() - self._loaded_at >= self._ttl

    async def refresh(self, *, only_if_missing: bool = False) -> None:
        """Fetch the catalogue now (one fetch at a time)."""
        async with self._lock:
            if only_if_missing and self._loaded_at is not None:
                return  # another task loaded it while this one waited
            try:
                models = await self._fetch()
            except BaseException:
                self._failed_at = self._clock()
                raise
            self._models = {model.id: model for model in models}
            self._loaded_at = self._clock()
            log.info("models catalogue loaded", models=len(models))

    async def ensure_loaded(self) -> None:
        """Load on first use; afterwards only start a background refresh when stale."""
        if self._loaded_at is None:
            await self.refresh(only_if_missing=True)
        elif self.stale:
            self._refresh_in_background()

    def _refresh_in_background(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            return
        if self._failed_at is not None and self._clock() - self._failed_at < self.RETRY_AFTER_FAILURE:
            return  # OpenRouter was down a moment ago: do not ask again on every keystroke

        async def run() -> None:
            try:
                await self.refresh()
            except (OpenRouterError, OSError) as exc:
                log.warning("models catalogue refresh failed; keeping the previous one", error=repr(exc))

        self._refreshing = asyncio.create_task(run(), name="models-catalogue-refresh")

    async def close(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)

    def get(self, model_id: str) -> ModelInfo | None:
        if self.stale and self._loaded_at is not None:
            self._refresh_in_background()
        return self._models.get(model_id)

    def all(self) -> list[ModelInfo]:
        if self.stale and self._loaded_at is not None:
            self._refresh_in_background()
        return sorted(self._models.values(), key=lambda m: m.id)

    def search(self, query: str = "", *, among: Iterable[ModelInfo] | None = None, limit: int = 25) -> list[ModelInfo]:
        """Models whose id or name contains every word of `query`, best matches first."""
        words = query.lower().split()
        pool = list(among) if among is not None else self.all()
        hits = [m for m in pool if all(w in m.id.lower() or w in m.name.lower() for w in words)]
        q = query.lower().strip()

        def rank(m: ModelInfo) -> tuple[bool, int, str]:
            position = m.id.lower().find(q) if q else 0
            return (not m.id.lower().startswith(q), position if position >= 0 else 1 << 30, m.id)

        hits.sort(key=rank)
        return hits[:limit]

    def vision_models(self, limit: int = 5, among: Iterable[str] | None = None) -> list[ModelInfo]:
        pool = [self._models[m] for m in among if m in self._models] if among is not None else self.all()
        return [m for m in pool if m.vision][:limit]
