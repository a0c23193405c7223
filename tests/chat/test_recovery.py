"""After a crash: streaming answers are marked interrupted and open holds are settled, with real
SQLite and the local OpenRouter server's /generation endpoint."""

from __future__ import annotations

from decimal import Decimal

from bot.quotas import Pricing, Reservation
from bot.shards import ShardScope
from bot.store.spend import SpendRepo
from tests.chat.test_pipeline import settled
from tests.core_harness import CoreParts


async def test_crash_between_reserve_and_settle(parts: CoreParts) -> None:
    """What a crash leaves: a streaming turn (progress saved) and an open hold linked to it."""
    repo, quotas, recovery = parts.repo, parts.core.recovery.quotas, parts.core.recovery
    conv = await parts.core.conversations.start(guild_id=1, channel_id=2, owner_id=3, model="openai/gpt-4o",
                                                title="t")
    question = await repo.add_user_turn(conv.id, author_id=3, content="hi", message_id=None, channel_id=2)
    pricing = Pricing(Decimal("0.0000025"), Decimal("0.00001"))
    holds = []
    for gen_id in ("gen-crashed-known", None):
        hold = await quotas.reserve(guild_id=1, user_id=3, model="openai/gpt-4o", pricing=pricing,
                                         prompt_tokens=100, images=0, max_tokens=500)
        assert isinstance(hold, Reservation)
        turn_id = await repo.start_answer(conv.id, reply_to=question.id, model="openai/gpt-4o", message_ids=[5],
                                          channel_id=2)
        await quotas.link_turn(hold, turn_id)
        await repo.save_progress(turn_id, "partial answer", gen_id)
        holds.append(hold)
    parts.fake.generations["gen-crashed-known"] = {"id": "gen-crashed-known", "total_cost": 0.0009}

    interrupted = await recovery.recover_interrupted()
    assert [t.content for t in interrupted] == ["partial answer", "partial answer"]
    assert await recovery.settle_orphans() == 2
    rows = await settled(parts)
    assert rows[0][1:3] == (900_000, "generation")
    assert rows[1][1:3] == (holds[1].amount * 10**9, "reserved")  # unknown: the full hold is charged
    totals = await SpendRepo(parts.db).totals(1, _month())
    assert totals.reserved_nusd == 0 and totals.spent_nusd == 900_000 + rows[1][1]
    statuses = await parts.db.fetchall("SELECT status, cost_nusd FROM turns WHERE role = 'assistant' ORDER BY id")
    assert [tuple(s) for s in statuses] == [("interrupted", 900_000), ("interrupted", None)]
    assert await recovery.settle_orphans() == 0


def _month() -> str:
    from datetime import UTC, datetime

    from bot.quotas import month_key
    return month_key(datetime.now(UTC))


async def test_a_process_recovers_only_the_guilds_of_its_shards(parts: CoreParts) -> None:
    """Two processes share the database: one restarting must leave the other's streaming answers and
    holds alone. DMs are shard 0's."""
    repo, quotas = parts.repo, parts.core.recovery.quotas
    pricing = Pricing(Decimal("0.0000025"), Decimal("0.00001"))
    guilds = {shard: ((10_000 * 2 + shard) << 22) | 7 for shard in (0, 1)}
    turns: dict[int | None, int] = {}
    for guild_id in (guilds[0], guilds[1], None):
        conv = await parts.core.conversations.start(guild_id=guild_id, channel_id=2, owner_id=3,
                                                    model="openai/gpt-4o", title="t")
        question = await repo.add_user_turn(conv.id, author_id=3, content="hi", message_id=None, channel_id=2)
        hold = await quotas.reserve(guild_id=guild_id, user_id=3, model="openai/gpt-4o", pricing=pricing,
                                    prompt_tokens=100, images=0, max_tokens=500)
        assert isinstance(hold, Reservation)
        turns[guild_id] = await repo.start_answer(conv.id, reply_to=question.id, model="openai/gpt-4o",
                                                  message_ids=[5], channel_id=2)
        await quotas.link_turn(hold, turns[guild_id])

    shard_1 = ShardScope(frozenset({1}), 2)
    assert [t.id for t in await parts.core.recover(shard_1)] == [turns[guilds[1]]]
    assert {h.turn_id for h in await quotas.open_reservations()} == {turns[guilds[0]], turns[None]}
    streaming = {t.id for t in await repo.streaming_turns()}
    assert streaming == {turns[guilds[0]], turns[None]}

    shard_0 = ShardScope(frozenset({0}), 2)
    assert {t.id for t in await parts.core.recover(shard_0)} == streaming  # its guild and the DMs
    assert await quotas.open_reservations() == [] and await repo.streaming_turns() == []


async def test_a_crash_after_a_retried_try_settles_every_try_that_was_billed(parts: CoreParts) -> None:
    """The stream's progress saves carry the generations of tries retried before the first token: a hold
    a crash left open is settled to the last try's cost plus what the earlier ones were billed."""
    repo, quotas, recovery = parts.repo, parts.core.recovery.quotas, parts.core.recovery
    conv = await parts.core.conversations.start(guild_id=1, channel_id=2, owner_id=3, model="openai/gpt-4o",
                                                title="t")
    question = await repo.add_user_turn(conv.id, author_id=3, content="hi", message_id=None, channel_id=2)
    hold = await quotas.reserve(guild_id=1, user_id=3, model="openai/gpt-4o",
                                pricing=Pricing(Decimal("0.0000025"), Decimal("0.00001")), prompt_tokens=100,
                                images=0, max_tokens=500)
    assert isinstance(hold, Reservation)
    turn_id = await repo.start_answer(conv.id, reply_to=question.id, model="openai/gpt-4o", message_ids=[5],
                                      channel_id=2)
    await quotas.link_turn(hold, turn_id)
    await repo.save_progress(turn_id, "partial", "gen-last", ["gen-first-try", "gen-never-billed"])
    parts.fake.generations["gen-last"] = {"id": "gen-last", "total_cost": 0.0009}
    parts.fake.generations["gen-first-try"] = {"id": "gen-first-try", "total_cost": 0.0001}

    assert [t.earlier_generations for t in await recovery.recover_interrupted()] == [
        ["gen-first-try", "gen-never-billed"]]
    assert await recovery.settle_orphans() == 1
    [row] = await settled(parts)
    assert row[1:3] == (1_000_000, "generation")  # $0.0009 + $0.0001 (+ $0 for the unknown one)
