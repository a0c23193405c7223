"""The chat core with real SQLite and the local OpenRouter server: settlement and crash recovery.

The Discord side is replaced by `RecordingView`, a plain implementation of the core's `AnswerView`
protocol (the Discord layer itself is tested end to end in tests/discord).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from bot.chat.service import AnswerOutcome, ChatConfig, ChatService
from bot.moderation import GuildPolicy
from bot.money import to_nusd
from bot.openrouter.catalogue import ModelCatalogue
from bot.openrouter.client import OpenRouterClient
from bot.quotas import Pricing, QuotaService, Reservation
from bot.store.conversations import ConversationRepo
from bot.store.database import Database
from bot.store.guilds import GuildRepo
from bot.store.spend import SpendRepo
from tests.fakes.openrouter_server import FakeOpenRouter, JSONReply, SSEReply
from tests.openrouter.conftest import make_client


@dataclass
class RecordingView:
    content: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    outcome: AnswerOutcome | None = None
    ids: list[int] = field(default_factory=list)

    async def begin(self) -> None:
        self.ids = [1001]

    def message_ids(self) -> list[int]:
        return self.ids

    def append(self, content: str, reasoning: str) -> None:
        self.content.append(content)

    async def notice(self, text: str) -> None:
        self.notices.append(text)

    async def finish(self, outcome: AnswerOutcome) -> None:
        self.outcome = outcome


@dataclass
class Core:
    chat: ChatService
    db: Database
    fake: FakeOpenRouter
    client: OpenRouterClient


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    fake = FakeOpenRouter()
    await fake.start()
    db = Database(tmp_path / "core.sqlite3")
    await db.open()
    await db.migrate()
    client = make_client(fake)
    catalogue = ModelCatalogue(client.list_models)
    guilds = GuildRepo(db)
    chat = ChatService(
        repo=ConversationRepo(db), client=client, catalogue=catalogue,
        config=ChatConfig(system_prompt="Be brief.", generation_lookup_delay=0.01),
        policy=GuildPolicy(guilds=guilds, catalogue=catalogue, operator_patterns=["openai/*"],
                           operator_default_model="openai/gpt-4o", fallback_models=[], max_answer_tokens=500),
        budget=QuotaService(spend=SpendRepo(db), guilds=guilds, default_guild_quota=Decimal(5),
                            default_member_quota=Decimal(1)),
    )
    yield Core(chat, db, fake, client)
    await client.aclose()
    await db.close()
    await fake.close()


async def ask(core: Core, text: str = "Hello there") -> tuple[RecordingView, int]:
    conv = await core.chat.start_conversation(guild_id=1, channel_id=2, owner_id=3, model="openai/gpt-4o", title="t")
    turn = await core.chat.add_user_turn(conv, author_id=3, content=text, message_id=None, channel_id=2)
    view = RecordingView()
    await core.chat.answer(conv, turn, view)
    return view, conv.id


async def settled(core: Core) -> list[tuple[object, ...]]:
    rows = await core.db.fetchall("SELECT amount_nusd, settled_nusd, settled_from, turn_id FROM reservations")
    return [tuple(r) for r in rows]


async def test_settled_from_the_stream_usage(core: Core) -> None:
    view, _ = await ask(core)
    assert view.outcome is not None and view.outcome.status == "complete" and view.outcome.cost_source == "usage"
    [(amount, actual, source, turn_id)] = await settled(core)
    assert source == "usage" and actual == to_nusd(view.outcome.cost) and 0 < actual <= amount  # type: ignore[arg-type]
    assert tuple(await core.db.fetchone("SELECT cost_nusd FROM turns WHERE id = ?", (turn_id,))) == (actual,)
    body = core.fake.chat_requests()[-1].json()
    assert body["max_tokens"] == 500 and body["messages"][0] == {"role": "system", "content": "Be brief."}


def frames_without_usage(gen_id: str) -> list[bytes]:
    chunk = {"id": gen_id, "model": "openai/gpt-4o", "provider": "OpenAI",
             "choices": [{"index": 0, "delta": {"content": "Hi!"}, "finish_reason": None}]}
    end = {"id": gen_id, "model": "openai/gpt-4o", "provider": "OpenAI",
           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "native_finish_reason": "stop"}]}
    return [f"data: {json.dumps(chunk)}\n\n".encode(), f"data: {json.dumps(end)}\n\n".encode(), b"data: [DONE]\n\n"]


async def test_settled_from_the_generation_endpoint_when_the_stream_has_no_usage(core: Core) -> None:
    core.fake.script("chat", SSEReply(events=frames_without_usage("gen-nousage-1")))
    stats = {"id": "gen-nousage-1", "total_cost": 0.000321, "model": "openai/gpt-4o"}
    core.fake.script("generation", JSONReply(404, {"error": {"code": 404, "message": "Generation not found"}}),
                     JSONReply(200, {"data": stats}))
    view, _ = await ask(core)
    assert view.outcome is not None and view.outcome.cost == Decimal("0.000321")
    assert view.outcome.cost_source == "generation"
    [(_, actual, source, _)] = await settled(core)
    assert (actual, source) == (321_000, "generation")


async def test_settled_from_the_estimate_when_nothing_else_is_known(core: Core) -> None:
    core.fake.script("chat", SSEReply(events=frames_without_usage("gen-unknown-2")))
    core.fake.generation_404_first = 100
    view, _ = await ask(core)
    assert view.outcome is not None and view.outcome.cost_source == "estimate"
    [(amount, actual, source, _)] = await settled(core)
    assert source == "estimate" and 0 < actual < amount


async def test_a_refused_request_holds_nothing(core: Core) -> None:
    await GuildRepo(core.db).set_setting(1, "member_quota_nusd", 0, actor_id=1, action="quota", old_text=None,
                                         new_text="$0")
    view, _ = await ask(core)
    assert view.outcome is not None and view.outcome.status == "refused"
    assert "cannot spend anything" in (view.outcome.error_message or "")
    assert await settled(core) == [] and core.fake.chat_requests() == []


async def test_crash_between_reserve_and_settle(core: Core) -> None:
    """What a crash leaves: a streaming turn (progress saved) and an open hold linked to it."""
    chat, repo = core.chat, core.chat.repo
    conv = await chat.start_conversation(guild_id=1, channel_id=2, owner_id=3, model="openai/gpt-4o", title="t")
    question = await chat.add_user_turn(conv, author_id=3, content="hi", message_id=None, channel_id=2)
    assert chat.budget is not None
    pricing = Pricing(Decimal("0.0000025"), Decimal("0.00001"))
    holds = []
    for gen_id in ("gen-crashed-known", None):
        hold = await chat.budget.reserve(guild_id=1, user_id=3, model="openai/gpt-4o", pricing=pricing,
                                         prompt_tokens=100, images=0, max_tokens=500)
        assert isinstance(hold, Reservation)
        turn_id = await repo.start_answer(conv.id, reply_to=question.id, model="openai/gpt-4o", message_ids=[5],
                                          channel_id=2)
        await chat.budget.link_turn(hold, turn_id)
        await repo.save_progress(turn_id, "partial answer", gen_id)
        holds.append(hold)
    core.fake.generations["gen-crashed-known"] = {"id": "gen-crashed-known", "total_cost": 0.0009}

    interrupted = await chat.recover_interrupted()
    assert [t.content for t in interrupted] == ["partial answer", "partial answer"]
    assert await chat.settle_orphans() == 2
    rows = await settled(core)
    assert rows[0][1:3] == (900_000, "generation")
    assert rows[1][1:3] == (holds[1].amount * 10**9, "reserved")  # unknown: the full hold is charged
    totals = await SpendRepo(core.db).totals(1, _month())
    assert totals.reserved_nusd == 0 and totals.spent_nusd == 900_000 + rows[1][1]
    statuses = await core.db.fetchall("SELECT status, cost_nusd FROM turns WHERE role = 'assistant' ORDER BY id")
    assert [tuple(s) for s in statuses] == [("interrupted", 900_000), ("interrupted", None)]
    assert await chat.settle_orphans() == 0


def _month() -> str:
    from datetime import UTC, datetime

    from bot.quotas import month_key
    return month_key(datetime.now(UTC))
