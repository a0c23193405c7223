"""The answer pipeline end to end through the core (plan → hold → stream → settle → record), with real
SQLite and PostgreSQL and the local OpenRouter server: where each settled cost comes from."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from decimal import Decimal

import asyncpg
import pytest

from bot.chat.speakers import GROUP_NOTE
from bot.chat.view import AnswerOutcome
from bot.money import to_nusd
from bot.store.guilds import GuildRepo
from bot.store.postgres import PostgresDatabase
from tests.core_harness import CoreParts, RecordingView
from tests.fakes.openrouter_server import JSONReply, SSEReply
from tests.openrouter.conftest import API_KEY
from tests.postgres import Postgres, PostgresServer


async def ask(parts: CoreParts, text: str = "Hello there") -> tuple[RecordingView, int]:
    conversations = parts.core.conversations
    conv = await conversations.start(guild_id=1, channel_id=2, owner_id=3, model="openai/gpt-4o", title="t")
    view = RecordingView()
    await conversations.ask(conv, author_id=3, content=text, message_id=None, channel_id=2, attachments=(), view=view)
    return view, conv.id


async def settled(parts: CoreParts) -> list[tuple[object, ...]]:
    rows = await parts.db.fetchall("SELECT amount_nusd, settled_nusd, settled_from, turn_id FROM reservations")
    return [tuple(r) for r in rows]


async def test_settled_from_the_stream_usage(parts: CoreParts) -> None:
    view, _ = await ask(parts)
    assert view.outcome is not None and view.outcome.status == "complete" and view.outcome.cost_source == "usage"
    [(amount, actual, source, turn_id)] = await settled(parts)
    assert source == "usage" and actual == to_nusd(view.outcome.cost) and 0 < actual <= amount  # type: ignore[arg-type]
    assert tuple(await parts.db.fetchone("SELECT cost_nusd FROM turns WHERE id = ?", (turn_id,))) == (actual,)
    body = parts.fake.chat_requests()[-1].json()
    assert body["max_tokens"] == 500
    assert body["messages"][0] == {"role": "system", "content": f"Be brief.\n\n{GROUP_NOTE}"}


def frames_without_usage(gen_id: str) -> list[bytes]:
    chunk = {"id": gen_id, "model": "openai/gpt-4o", "provider": "OpenAI",
             "choices": [{"index": 0, "delta": {"content": "Hi!"}, "finish_reason": None}]}
    end = {"id": gen_id, "model": "openai/gpt-4o", "provider": "OpenAI",
           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "native_finish_reason": "stop"}]}
    return [f"data: {json.dumps(chunk)}\n\n".encode(), f"data: {json.dumps(end)}\n\n".encode(), b"data: [DONE]\n\n"]


async def test_settled_from_the_generation_endpoint_when_the_stream_has_no_usage(parts: CoreParts) -> None:
    parts.fake.script("chat", SSEReply(events=frames_without_usage("gen-nousage-1")))
    stats = {"id": "gen-nousage-1", "total_cost": 0.000321, "model": "openai/gpt-4o"}
    parts.fake.script("generation", JSONReply(404, {"error": {"code": 404, "message": "Generation not found"}}),
                     JSONReply(200, {"data": stats}))
    view, _ = await ask(parts)
    assert view.outcome is not None and view.outcome.cost == Decimal("0.000321")
    assert view.outcome.cost_source == "generation"
    [(_, actual, source, _)] = await settled(parts)
    assert (actual, source) == (321_000, "generation")


async def test_settled_from_the_estimate_when_nothing_else_is_known(parts: CoreParts) -> None:
    parts.fake.script("chat", SSEReply(events=frames_without_usage("gen-unknown-2")))
    parts.fake.generation_404_first = 100
    view, _ = await ask(parts)
    assert view.outcome is not None and view.outcome.cost_source == "estimate"
    [(amount, actual, source, _)] = await settled(parts)
    assert source == "estimate" and 0 < actual < amount


async def test_a_refused_request_holds_nothing(parts: CoreParts) -> None:
    await GuildRepo(parts.db).set_setting(1, "member_quota_nusd", 0, actor_id=1, action="quota", old_text=None,
                                         new_text="$0")
    view, _ = await ask(parts)
    assert view.outcome is not None and view.outcome.status == "refused"
    assert "cannot spend anything" in (view.outcome.error_message or "")
    assert await settled(parts) == [] and parts.fake.chat_requests() == []




async def ask_in_background(parts: CoreParts) -> tuple[asyncio.Task[AnswerOutcome], RecordingView]:
    """A question asked in a new conversation, answered in the background; back once words arrive."""
    conversations = parts.core.conversations
    conv = await conversations.start(guild_id=1, channel_id=2, owner_id=3, model="openai/gpt-4o", title="t")
    view = RecordingView()
    asking = asyncio.create_task(conversations.ask(conv, author_id=3, content="Hi", message_id=None, channel_id=2,
                                                   attachments=(), view=view))
    await view.wait_for_pieces(1)
    return asking, view


@pytest.mark.sqlite_only
async def test_a_database_locked_at_the_end_of_an_answer_delays_its_record_but_loses_nothing(
        parts: CoreParts) -> None:
    """Another process holds SQLite's write lock past the busy timeout while the answer ends: the
    view is finished, and the settlement and the record land once the lock is released."""
    parts.fake.tokens_per_second = 50
    parts.fake.reply_text = "word " * 20
    parts.db.busy_timeout_ms = 20  # type: ignore[attr-defined]
    asking, view = await ask_in_background(parts)
    other = sqlite3.connect(parts.db.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(1.5, other.execute, "ROLLBACK")
    try:
        outcome = await asyncio.wait_for(asking, 20)
    finally:
        other.close()
    assert outcome.status == "complete" and view.outcome is outcome and outcome.content == "word " * 20
    [(amount, actual, source, turn_id)] = await settled(parts)
    assert source == "usage" and actual == to_nusd(outcome.cost) <= amount  # type: ignore[arg-type]
    row = await parts.db.fetchone("SELECT status, content FROM turns WHERE id = ?", (turn_id,))
    assert tuple(row) == ("complete", "word " * 20)


@pytest.mark.postgres_only
async def test_a_postgresql_server_down_at_the_end_of_an_answer_delays_its_record_but_loses_nothing(
        parts: CoreParts, postgres: Postgres) -> None:
    """The PostgreSQL server stops (every connection cut) while the answer ends and comes back 1.5 s later:
    the settlement and the record are retried on asyncpg's connection errors and land."""
    if not isinstance(postgres, PostgresServer):
        pytest.skip("stopping the server needs one of the tests' own")
    parts.fake.tokens_per_second = 50
    parts.fake.reply_text = "word " * 20
    asking, view = await ask_in_background(parts)
    await asyncio.to_thread(postgres.halt)
    try:
        await asyncio.sleep(1.5)
        assert not asking.done()  # the answer's end waits for the database
    finally:
        await asyncio.to_thread(postgres.resume)
    outcome = await asyncio.wait_for(asking, 30)
    assert outcome.status == "complete" and view.outcome is outcome and outcome.content == "word " * 20
    [(amount, actual, source, turn_id)] = await settled(parts)
    assert source == "usage" and actual == to_nusd(outcome.cost) <= amount  # type: ignore[arg-type]
    row = await parts.db.fetchone("SELECT status, content, shown FROM turns WHERE id = ?", (turn_id,))
    assert tuple(row) == ("complete", "word " * 20, 1)


async def backend_waiting_for_a_lock(conn: asyncpg.Connection) -> int:
    for _ in range(500):
        pid = await conn.fetchval("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                  "AND pid <> pg_backend_pid()")
        if pid:
            return int(pid)
        await asyncio.sleep(0.02)
    raise AssertionError("no connection waited for the lock")


@pytest.mark.postgres_only
async def test_a_postgresql_connection_cut_in_a_settlement_is_retried_and_lands(parts: CoreParts) -> None:
    """Another session row-locks the totals; the settlement waits on the lock and its connection is then
    terminated by the server (as a failover or an operator would): the settlement is retried on a new
    connection and lands once the lock is released."""
    assert isinstance(parts.db, PostgresDatabase)
    parts.fake.tokens_per_second = 40
    parts.fake.reply_text = "word " * 40  # about a second: the lock is taken before the answer ends
    blocker = await asyncpg.connect(parts.db.url)
    try:
        asking, view = await ask_in_background(parts)
        await blocker.execute("BEGIN; SELECT * FROM spend_totals FOR UPDATE")
        waiting = await backend_waiting_for_a_lock(blocker)
        assert await blocker.fetchval("SELECT pg_terminate_backend($1)", waiting)
        await asyncio.sleep(0.3)
        assert not asking.done()
        await blocker.execute("ROLLBACK")
    finally:
        await blocker.close()
    outcome = await asyncio.wait_for(asking, 30)
    assert outcome.status == "complete" and view.outcome is outcome and outcome.content == "word " * 40
    [(amount, actual, source, turn_id)] = await settled(parts)
    assert source == "usage" and actual == to_nusd(outcome.cost) <= amount  # type: ignore[arg-type]
    assert (await parts.db.fetchone("SELECT status FROM turns WHERE id = ?", (turn_id,)))[0] == "complete"


def frames_with_cost(gen_id: str, cost: str) -> list[bytes]:
    """A stream whose usage chunk carries `cost` as raw JSON text (`NaN` is what Python's json sends for nan)."""
    *content, done = frames_without_usage(gen_id)
    usage = (f'data: {{"id":"{gen_id}","model":"openai/gpt-4o","choices":[],"usage":{{"prompt_tokens":9,'
             f'"completion_tokens":1,"total_tokens":10,"cost":{cost}}}}}\n\n').encode()
    return [*content, usage, done]


async def test_an_unreadable_usage_cost_falls_back_to_the_generation_endpoint(parts: CoreParts) -> None:
    for n, cost in enumerate(("NaN", '"n/a"', "-0.5", "Infinity")):
        gen_id = f"gen-nan-{n}"
        parts.fake.script("chat", SSEReply(events=frames_with_cost(gen_id, cost)))
        parts.fake.generations[gen_id] = {"id": gen_id, "total_cost": 0.000123, "model": "openai/gpt-4o"}
        view, _ = await ask(parts)
        assert view.outcome is not None and view.outcome.status == "complete", cost
        assert (view.outcome.cost, view.outcome.cost_source) == (Decimal("0.000123"), "generation"), cost
    assert [(actual, source) for _, actual, source, _ in await settled(parts)] == [(123_000, "generation")] * 4


async def test_an_unreadable_cost_everywhere_falls_back_to_the_estimate(parts: CoreParts) -> None:
    parts.fake.script("chat", SSEReply(events=frames_with_cost("gen-nan-all", "NaN")))
    parts.fake.script("generation", JSONReply(200, b'{"data":{"id":"gen-nan-all","total_cost":NaN}}'))
    view, _ = await ask(parts)
    assert view.outcome is not None and view.outcome.cost_source == "estimate"
    [(amount, actual, source, _)] = await settled(parts)
    assert source == "estimate" and 0 < actual < amount


async def test_an_upstream_error_that_repeats_the_key_is_scrubbed_before_it_is_shown_or_stored(
        parts: CoreParts) -> None:
    body = {"error": {"code": 400, "message": f"Provider rejected the request sent with key {API_KEY}",
                      "metadata": {"raw": f"headers: Authorization: Bearer {API_KEY}"}}}
    parts.fake.script("chat", JSONReply(400, body))
    view, _ = await ask(parts)
    assert view.outcome is not None and view.outcome.status == "error"
    assert view.outcome.error_message is not None and "Provider rejected the request" in view.outcome.error_message
    assert API_KEY not in view.outcome.error_message and "[REDACTED]" in view.outcome.error_message
    [(error,)] = await parts.db.fetchall("SELECT error FROM turns WHERE role = 'assistant'")
    assert error.startswith("BadRequest: ") and API_KEY not in error


@pytest.mark.sqlite_only
async def test_a_full_disk_at_the_end_of_an_answer_delays_its_record_but_loses_nothing(parts: CoreParts) -> None:
    """The database cannot grow (SQLite's 'database or disk is full', made here with max_page_count)
    while a long answer ends: the settlement and the record land once there is room again."""
    parts.core.models.max_answer_tokens = 16_000
    parts.fake.tokens_per_second = 40_000  # about 0.3 s: the answer ends while the disk is full
    parts.fake.reply_text = "lorem ipsum " * 4000  # ~48 KB: recording it needs new pages
    asking, view = await ask_in_background(parts)
    pages = (await parts.db.fetchone("PRAGMA page_count"))[0]
    await parts.db.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from now on
    with pytest.raises(sqlite3.OperationalError, match="full"):
        await parts.db.execute("INSERT INTO bot_state (key, value) VALUES ('probe', ?)", ("x" * 100_000,))
    await asyncio.sleep(1.5)
    assert not asking.done()  # the record waits for room, retrying
    await parts.db.conn.execute("PRAGMA max_page_count = 1073741823")  # room again
    outcome = await asyncio.wait_for(asking, 20)
    assert outcome.status == "complete" and view.outcome is outcome and outcome.content == parts.fake.reply_text
    [(_, actual, source, turn_id)] = await settled(parts)
    assert source == "usage" and actual == to_nusd(outcome.cost)  # type: ignore[arg-type]
    row = await parts.db.fetchone("SELECT status, length(content) FROM turns WHERE id = ?", (turn_id,))
    assert tuple(row) == ("complete", len(parts.fake.reply_text))


async def test_when_many_questions_come_at_once_a_few_are_prepared_at_a_time(parts: CoreParts) -> None:
    """Planned and held a few at a time: the first questions' requests go out while later ones still
    wait their turn, instead of every request leaving together once all are planned."""
    pipeline = parts.core.conversations.pipeline
    planner = pipeline.planner
    plan = planner.plan
    planning = most = 0
    plan_started: list[float] = []

    async def counted_plan(*args: object, **kwargs: object) -> object:
        nonlocal planning, most
        planning += 1
        most = max(most, planning)
        plan_started.append(time.monotonic())
        try:
            await asyncio.sleep(0.005)  # a busy database: planning takes a moment
            return await plan(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            planning -= 1

    planner.plan = counted_plan  # type: ignore[method-assign]
    count = pipeline.PREPARING * 3
    views = await asyncio.gather(*(ask(parts, f"question {i}") for i in range(count)))
    assert all(view.outcome is not None and view.outcome.status == "complete" for view, _ in views)
    assert most <= pipeline.PREPARING
    first_request = min(r.at for r in parts.fake.chat_requests())
    assert first_request < max(plan_started)  # the first request went out before the last question was planned


async def test_a_try_retried_before_its_first_token_is_settled_with_the_answer(parts: CoreParts) -> None:
    """OpenRouter answered a first try (with its generation id) and failed it before any token; the
    retry answered. What `/generation` says the first try was billed is settled with the answer; a
    retried try OpenRouter does not know of adds nothing."""
    parts.fake.script("chat", SSEReply(fixture="stream-midstream-error-docs-example.sse", generation_id="gen-abc123"),
                      SSEReply(fixture="stream-midstream-error-docs-example.sse", generation_id="gen-unbilled"))
    parts.fake.generations["gen-abc123"] = {
        "id": "gen-abc123", "total_cost": 0.00025, "model": "openai/gpt-4o", "provider_name": "OpenAI",
        "tokens_prompt": 12, "tokens_completion": 0, "finish_reason": "error", "native_finish_reason": "error",
        "streamed": True, "cancelled": False}
    view, _ = await ask(parts)
    assert view.outcome is not None and view.outcome.status == "complete" and view.outcome.cost_source == "usage"
    [(_, actual, source, turn_id)] = await settled(parts)
    (generation_id,) = tuple(await parts.db.fetchone("SELECT generation_id FROM turns WHERE id = ?", (turn_id,)))
    answered = Decimal(str(parts.fake.generations[generation_id]["total_cost"]))
    assert source == "usage" and actual == to_nusd(answered + Decimal("0.00025")) == to_nusd(view.outcome.cost)
    assert len(parts.fake.chat_requests()) == 3
    row = await parts.db.fetchone("SELECT earlier_generations FROM turns WHERE id = ?", (turn_id,))
    assert json.loads(row[0]) == ["gen-abc123", "gen-unbilled"]  # saved with its progress, for a crash
