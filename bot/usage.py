"""What was spent: a member's and a server's month against their quotas, and the bot's OpenRouter credit."""

from __future__ import annotations

from bot.openrouter.client import OpenRouterClient
from bot.openrouter.types import KeyInfo
from bot.quotas import QuotaService, UsageReport


class UsageService:
    def __init__(self, *, quotas: QuotaService, client: OpenRouterClient) -> None:
        self.quotas = quotas
        self.client = client

    async def report(self, guild_id: int | None, user_id: int, *, details: bool) -> UsageReport:
        """This month so far; `details` adds the top members and models (for moderators)."""
        return await self.quotas.usage(guild_id, user_id, details=details)

    async def credits(self) -> KeyInfo:
        """The OpenRouter key's limit, usage and remaining credit (raises `OpenRouterError`)."""
        return await self.client.get_key()
