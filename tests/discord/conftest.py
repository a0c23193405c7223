"""End-to-end harness: the real bot (`bot.runner.run`) against local Discord and OpenRouter servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.runner import run
from bot.settings import Settings
from bot.store.database import Database
from bot.store.sqlite import SqliteDatabase
from tests.fakes.discord import FakeDiscord, Msg
from tests.fakes.openrouter_server import FakeOpenRouter

NO_MENTIONS = {"parse": []}


@dataclass
class Harness:
    discord: FakeDiscord
    openrouter: FakeOpenRouter
    db_path: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    client_options: dict[str, Any] = field(default_factory=dict)  # passed to ChatBot (e.g. a pacer to watch)
    task: asyncio.Task[int] | None = None
    stop_event: asyncio.Event | None = None
    user: int = 0
    moderator: int = 0
    stranger: int = 0

    def settings(self) -> Settings:
        values: dict[str, Any] = {
            "discord_token": "fake-discord-token",
            "openrouter_api_key": "sk-or-v1-e2e-test-key",
            "openrouter_base_url": self.openrouter.base_url,
            "database_path": self.db_path,
            "default_model": "openai/gpt-4o",
            "stream_edit_interval_seconds": 0.2,
            "log_level": "WARNING",
            "log_format": "console",
            "request_retry_budget_seconds": 10,
            "default_allowed_models": ["openai/*", "anthropic/*"],
        }
        return Settings(**(values | self.overrides))  # type: ignore[arg-type]

    async def start(self) -> None:
        ready = asyncio.Event()
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(run(self.settings(), ready=ready, stop=self.stop_event,
                                            client_options={"guild_ready_timeout": 0.05, **self.client_options}))
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({waiter, self.task}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            raise RuntimeError(f"the bot stopped during start: {self.task.result()}")
        assert waiter in done, "the bot did not become ready"

    async def stop(self) -> int:
        assert self.task is not None and self.stop_event is not None
        self.stop_event.set()
        status = await asyncio.wait_for(self.task, 30)
        self.task = None
        return status

    async def db(self) -> Database:
        db = SqliteDatabase(self.db_path)
        await db.open()
        return db

    async def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        db = await self.db()
        try:
            return [tuple(r) for r in await db.fetchall(sql, params)]
        finally:
            await db.close()

    def bot_messages(self, channel_id: int | None = None) -> list[Msg]:
        return self.discord.bot_messages(channel_id)

    async def wait_answer_done(self, channel_id: int, count: int = 1, within: float = 20) -> list[Msg]:
        """Until `count` finished answers (with a footer) are in the channel."""
        def finished() -> list[Msg]:
            return [m for m in self.discord.channel_messages(channel_id)
                    if m.author_id == self.discord.bot_user_id and "\n-# " in "\n" + m.content and "▌" not in m.content]
        await self.discord.wait_for(lambda: len(finished()) >= count, timeout=within)
        return finished()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    discord_fake = FakeDiscord()
    await discord_fake.start()
    discord_fake.install()
    openrouter = FakeOpenRouter()
    await openrouter.start()
    h = Harness(discord_fake, openrouter, tmp_path / "bot.sqlite3")
    h.user = discord_fake.add_user("alice")
    h.moderator = discord_fake.add_user("mod", manage_guild=True, admin=True)
    h.stranger = discord_fake.add_user("bob")
    try:
        yield h
    finally:
        if h.task is not None:
            await h.stop()
        await openrouter.close()
        await discord_fake.close()
    # 401/403/429 responses: Discord counts them towards an IP ban; the bot should draw none.
    assert discord_fake.invalid_requests == [], discord_fake.invalid_requests


@pytest.fixture
async def bot(harness: Harness) -> AsyncIterator[Harness]:
    await harness.start()
    yield harness


PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def has_stop_button(msg: Msg) -> bool:
    """Whether a message still shows the Stop button (a finished answer has Regenerate instead)."""
    return any(c.get("custom_id") == "answer:stop" for c in msg.iter_components())


def last_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if p.get("type") == "text")


async def start_conversation(bot: Harness, prompt: str = "What is Rust?", **options: Any) -> tuple[int, Msg]:
    """/chat in the text channel; returns the thread id and the answer message."""
    d = bot.discord
    before = set(d.threads)
    inter = await d.slash("chat", {"prompt": prompt, **options}, user_id=bot.user, channel_id=d.text_channel_id)
    await d.wait_for(lambda: set(d.threads) - before != set(), timeout=20)
    [thread_id] = set(d.threads) - before
    assert inter.message is not None
    return thread_id, inter.message
