"""The chat core wired as in production (`Core.build`) on a real database (an SQLite file, and a
PostgreSQL database) and the local OpenRouter server. The Discord side is replaced by `RecordingView`,
a plain implementation of the core's `AnswerView` protocol (the Discord layer itself is tested end to
end in tests/discord)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from bot.chat.config import ChatConfig
from bot.chat.view import AnswerOutcome
from bot.core import Core
from bot.openrouter.catalogue import ModelCatalogue
from bot.openrouter.client import OpenRouterClient
from bot.services import Services
from bot.settings import Settings
from bot.states import NoticeKind
from bot.store.connect import database_for
from bot.store.conversations import Conversation, ConversationRepo, StoredAttachment, Turn
from bot.store.database import Database
from tests.fakes.openrouter_server import FakeOpenRouter
from tests.openrouter.conftest import make_client


@dataclass
class RecordingView:
    content: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    progress: list[str] = field(default_factory=list)
    outcome: AnswerOutcome | None = None
    ids: list[int] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    opening: asyncio.Task[None] | None = None

    async def wait_for_pieces(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.content) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def begin(self, opened: Callable[[list[int]], Awaitable[None]]) -> None:
        self.ids = [1001]
        self.opening = asyncio.create_task(opened(list(self.ids)))  # as a Discord view reports its message

    def message_ids(self) -> list[int]:
        return self.ids

    def append(self, content: str, reasoning: str) -> None:
        self.content.append(content)
        self.arrived.set()

    async def notice(self, text: str, kind: NoticeKind = NoticeKind.NOTE) -> None:
        (self.progress if kind == NoticeKind.PROGRESS else self.notices).append(text)

    async def finish(self, outcome: AnswerOutcome) -> bool:
        if self.opening is not None:
            await self.opening
        self.outcome = outcome
        return True


@dataclass
class CoreParts:
    core: Core
    db: Database
    fake: FakeOpenRouter
    client: OpenRouterClient

    @property
    def repo(self) -> ConversationRepo:
        return self.core.conversations.repo


def test_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "discord_token": "x", "openrouter_api_key": "sk-or-v1-test", "default_model": "openai/gpt-4o",
        "default_allowed_models": ["openai/*"], "max_answer_tokens": 500, "system_prompt": "Be brief.",
        "default_guild_monthly_quota_usd": Decimal(5), "default_member_monthly_quota_usd": Decimal(1),
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture
async def parts(database_url: str) -> AsyncIterator[CoreParts]:
    """On each backend (tests/conftest.py `database_url`); tests marked `sqlite_only` run on SQLite alone."""
    fake = FakeOpenRouter()
    await fake.start()
    db = database_for(database_url)
    await db.open()
    await db.migrate()
    client = make_client(fake)
    services = Services(settings=test_settings(), db=db, openrouter=client,
                        catalogue=ModelCatalogue(client.list_models))
    core = Core.build(services, ChatConfig(system_prompt="Be brief.", generation_lookup_delay=0.01))
    yield CoreParts(core, db, fake, client)
    await client.aclose()
    await db.close()
    await fake.close()


async def conversation_with_question(parts: CoreParts, text: str = "Hello there", *, model: str = "openai/gpt-4o",
                                     guild_id: int | None = 1,
                                     attachments: tuple[StoredAttachment, ...] = ()) -> tuple[Conversation, Turn]:
    conversation = await parts.core.conversations.start(guild_id=guild_id, channel_id=2, owner_id=3, model=model,
                                                        title="t")
    question = await parts.repo.add_user_turn(conversation.id, author_id=3, content=text, message_id=None,
                                              channel_id=2, attachments=attachments)
    return conversation, question
