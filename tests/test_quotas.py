"""Quotas against a real SQLite file and a real PostgreSQL database: reservations, settlement, concurrency
(within a process and between two), month rollover."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.money import from_nusd, to_nusd
from bot.quotas import Pricing, QuotaRefusal, QuotaService, Reservation, month_key, next_reset, reset_text
from bot.states import CostSource
from bot.store.connect import database_for
from bot.store.database import Database, load_migrations
from bot.store.guilds import GuildRepo
from bot.store.spend import SpendRepo

NOV = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PRICING = Pricing(prompt=Decimal("0.000001"), completion=Decimal("0.000002"))  # $1 / $2 per million


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(migrated_db: Database) -> Database:
    """Each test runs on both backends: an SQLite file and a PostgreSQL database (tests/conftest.py)."""
    return migrated_db


def service(db: Database, clock: Clock, guild: str | None = "10", member: str | None = "2") -> QuotaService:
    return QuotaService(spend=SpendRepo(db), guilds=GuildRepo(db),
                        default_guild_quota=Decimal(guild) if guild is not None else None,
                        default_member_quota=Decimal(member) if member is not None else None, clock=clock)


async def set_quota(db: Database, guild_id: int, column: str, usd: str) -> None:
    await GuildRepo(db).set_setting(guild_id, column, to_nusd(Decimal(usd)), actor_id=1, action="quota",
                                    old_text=None, new_text=usd)


def test_months() -> None:
    assert month_key(NOV) == "2026-11"
    assert next_reset(NOV).isoformat() == "2026-12-01"
    assert next_reset(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)).isoformat() == "2027-01-01"
    assert reset_text(NOV) == "1 December"


async def test_reserve_then_settle_to_the_real_cost(db: Database) -> None:
    quotas = service(db, Clock(NOV))
    held = await quotas.reserve(guild_id=1, user_id=7, model="m/x", pricing=PRICING, prompt_tokens=1000, images=0,
                                max_tokens=1000)
    assert isinstance(held, Reservation)
    assert held.amount == Decimal("0.003") and held.max_tokens == 1000 and not held.lowered
    spend = SpendRepo(db)
    assert (await spend.totals(1, "2026-11")).reserved_nusd == to_nusd(Decimal("0.003"))
    settled, warnings = await quotas.settle(held.id, 1, Decimal("0.0012"), source="usage", model="m/x",
                                            fallback=held.amount)
    assert settled is not None and warnings == []
    guild, member = await spend.totals(1, "2026-11"), await spend.totals(1, "2026-11", 7)
    assert (guild.spent_nusd, guild.reserved_nusd, guild.requests) == (1_200_000, 0, 1)
    assert (member.spent_nusd, member.reserved_nusd) == (1_200_000, 0)
    assert await spend.top_models(1, "2026-11") == [("m/x", 1_200_000, 1)]
    # settling twice changes nothing
    assert (await quotas.settle(held.id, 1, Decimal(5), source="usage", model="m/x", fallback=held.amount))[0] is None
    assert (await spend.totals(1, "2026-11")).spent_nusd == 1_200_000


async def test_max_tokens_is_lowered_to_what_the_budget_pays_then_refused(db: Database) -> None:
    await set_quota(db, 1, "guild_quota_nusd", "0.01")
    quotas = service(db, Clock(NOV))
    held = await quotas.reserve(guild_id=1, user_id=7, model="m/x", pricing=PRICING, prompt_tokens=4000, images=0,
                                max_tokens=10_000)
    assert isinstance(held, Reservation)
    assert held.lowered and held.max_tokens == 3000  # (0.01 - 4000 × 1e-6) / 2e-6
    assert held.amount == Decimal("0.01")
    refused = await quotas.reserve(guild_id=1, user_id=8, model="m/x", pricing=PRICING, prompt_tokens=10, images=0,
                                   max_tokens=100)
    assert isinstance(refused, QuotaRefusal)
    await quotas.settle(held.id, 1, Decimal("0.0098765"), source="usage", model="m/x", fallback=held.amount)
    refused = await quotas.reserve(guild_id=1, user_id=8, model="m/x", pricing=PRICING, prompt_tokens=100, images=0,
                                   max_tokens=100)
    assert isinstance(refused, QuotaRefusal)
    assert refused.message == "This server has used $0.0099 of its $0.01 for November; it resets on 1 December."


async def test_member_quota_and_zero_quota(db: Database) -> None:
    await set_quota(db, 1, "member_quota_nusd", "0.001")
    quotas = service(db, Clock(NOV))
    first = await quotas.reserve(guild_id=1, user_id=7, model="m/x", pricing=PRICING, prompt_tokens=100, images=0,
                                 max_tokens=400)
    assert isinstance(first, Reservation)
    await quotas.settle(first.id, 1, Decimal("0.00095"), source="usage", model="m/x", fallback=first.amount)
    refused = await quotas.reserve(guild_id=1, user_id=7, model="m/x", pricing=PRICING, prompt_tokens=100, images=0,
                                   max_tokens=400)
    assert isinstance(refused, QuotaRefusal) and refused.message.startswith("You have used $0.0010 of your $0.0010")
    other = await quotas.reserve(guild_id=1, user_id=8, model="m/x", pricing=PRICING, prompt_tokens=100, images=0,
                                 max_tokens=400)
    assert isinstance(other, Reservation)  # another member still has room
    await set_quota(db, 2, "guild_quota_nusd", "0")
    zero = await quotas.reserve(guild_id=2, user_id=7, model="m/x", pricing=PRICING, prompt_tokens=1, images=0,
                                max_tokens=100)
    assert isinstance(zero, QuotaRefusal) and "cannot spend anything" in zero.message
    free = await quotas.reserve(guild_id=2, user_id=7, model="m/free", pricing=Pricing(Decimal(0), Decimal(0)),
                                prompt_tokens=100, images=0, max_tokens=100)
    assert isinstance(free, Reservation) and free.amount == 0


@pytest.mark.parametrize("worst_case_actual", [False, True])
async def test_fifty_requests_at_once_never_pass_the_quota(db: Database, worst_case_actual: bool) -> None:
    await set_quota(db, 1, "guild_quota_nusd", "0.05")
    quotas = service(db, Clock(NOV), member=None)
    rng = random.Random(4)
    refusals: list[str] = []

    async def one(user: int) -> Decimal:
        held = await quotas.reserve(guild_id=1, user_id=user, model="m/x", pricing=PRICING,
                                    prompt_tokens=rng.randint(500, 3000), images=0, max_tokens=2000)
        if isinstance(held, QuotaRefusal):
            refusals.append(held.message)
            return Decimal(0)
        await asyncio.sleep(rng.random() / 50)
        actual = held.amount if worst_case_actual else (held.amount * Decimal(rng.randint(10, 100)) / 100)
        await quotas.settle(held.id, 1, actual, source="usage", model="m/x", fallback=held.amount)
        return actual

    spent = await asyncio.gather(*(one(u) for u in range(1, 51)))
    totals = await SpendRepo(db).totals(1, "2026-11")
    assert totals.reserved_nusd == 0
    assert from_nusd(totals.spent_nusd) == sum(spent) <= Decimal("0.05")
    assert refusals and all(m.startswith("This server has used $") and "of its $0.05 for November" in m
                            for m in refusals)
    assert tuple(await db.fetchone("SELECT COUNT(*) FROM reservations WHERE settled_at IS NULL")) == (0,)


ROOT = Path(__file__).resolve().parents[1]


async def start_worker(database_url: str, first_user: int, cwd: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DISCORD_", "OPENROUTER_", "DATABASE_", "DEFAULT_"))}
    env |= {"PYTHONPATH": str(ROOT), "DATABASE_URL": database_url,
            "DISCORD_TOKEN": "t", "OPENROUTER_API_KEY": "sk-or-v1-test", "DEFAULT_GUILD_MONTHLY_QUOTA_USD": "0.05",
            "DEFAULT_MEMBER_MONTHLY_QUOTA_USD": "1000"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.quota_worker", str(first_user), "25", cwd=cwd, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def worker_says(proc: asyncio.subprocess.Process, word: str) -> str:
    assert proc.stdout is not None and proc.stderr is not None
    async with asyncio.timeout(60):
        while line := (await proc.stdout.readline()).decode():
            if line.startswith(word):
                return line[len(word):].strip()
        raise AssertionError(f"the worker ended without {word!r}: {(await proc.stderr.read()).decode()[-2000:]}")


async def test_two_processes_reserving_at_once_never_pass_the_quota(database_url: str, tmp_path: Path) -> None:
    """Two bot processes (the real Services and core, tests/quota_worker.py) on one database make 25
    requests each at the same moment against one server's $0.05: what is held and settled never passes it.
    Both also migrate the new database at once."""
    workers = [await start_worker(database_url, first, tmp_path) for first in (1, 1001)]
    try:
        for worker in workers:
            await worker_says(worker, "ready")
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        reports = [json.loads(await worker_says(worker, "result")) for worker in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
            await worker.wait()
    settled = sum(Decimal(amount) for report in reports for amount in report["settled"])
    assert settled and all(report["refused"] for report in reports), reports  # each saw the budget used up
    assert sum(len(r["settled"]) + r["refused"] for r in reports) == 50
    async with database_for(database_url) as db:
        spent, reserved, requests = tuple(await db.fetchone(
            "SELECT SUM(spent_nusd), SUM(reserved_nusd), SUM(requests) FROM spend_totals "
            "WHERE guild_id = 1 AND user_id = 0"))
        assert (int(reserved), int(requests)) == (0, sum(len(r["settled"]) for r in reports))
        assert from_nusd(int(spent)) == settled <= Decimal("0.05")
        assert (await db.fetchone("SELECT COUNT(*) FROM schema_migrations"))[0] == len(load_migrations())


async def test_month_rollover_starts_a_fresh_budget(db: Database) -> None:
    await set_quota(db, 1, "guild_quota_nusd", "0.01")
    clock = Clock(NOV)
    quotas = service(db, clock)
    held = await quotas.reserve(guild_id=1, user_id=7, model="m/x", pricing=PRICING, prompt_tokens=0, images=0,
                                max_tokens=5000)
    assert isinstance(held, Reservation)
    await quotas.settle(held.id, 1, Decimal("0.01"), source="usage", model="m/x", fallback=held.amount)
    assert isinstance(await quotas.reserve(guild_id=1, user_id=7, model="m/x", pricing=PRICING, prompt_tokens=0,
                                           images=0, max_tokens=100), QuotaRefusal)
    clock.now = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    again = await quotas.reserve(guild_id=1, user_id=7, model="m/x", pricing=PRICING, prompt_tokens=0, images=0,
                                 max_tokens=100)
    assert isinstance(again, Reservation)
    report = await quotas.usage(1, 7, details=True)
    assert report.month == "December 2026" and report.guild_spent == 0 and report.resets == "1 January"
    assert (await SpendRepo(db).totals(1, "2026-11")).spent_nusd == to_nusd(Decimal("0.01"))


async def test_eighty_percent_warning_is_given_once(db: Database) -> None:
    await set_quota(db, 1, "guild_quota_nusd", "1")
    quotas = service(db, Clock(NOV), member=None)
    messages = []
    for cost in ("0.5", "0.31", "0.05"):
        held = await quotas.reserve(guild_id=1, user_id=7, model="m/x", pricing=PRICING, prompt_tokens=0, images=0,
                                    max_tokens=100)
        assert isinstance(held, Reservation)
        _, warnings = await quotas.settle(held.id, 1, Decimal(cost), source="usage", model="m/x",
                                          fallback=held.amount)
        messages.append(warnings)
    assert messages[0] == [] and messages[2] == []
    assert messages[1] == ["This server has now used $0.81 of its $1.00 for November (over 80 %)."]


async def test_usage_report_uses_running_totals(db: Database) -> None:
    quotas = service(db, Clock(NOV))
    for user, cost, model in ((7, "0.2", "a/x"), (8, "0.5", "b/y"), (7, "0.1", "b/y")):
        held = await quotas.reserve(guild_id=1, user_id=user, model=model, pricing=PRICING, prompt_tokens=0,
                                    images=0, max_tokens=10)
        assert isinstance(held, Reservation)
        await quotas.settle(held.id, 1, Decimal(cost), source="usage", model=model, fallback=held.amount)
    report = await quotas.usage(1, 7, details=True)
    assert report.member_spent == Decimal("0.3") and report.guild_spent == Decimal("0.8")
    assert report.top_members == [(8, Decimal("0.5")), (7, Decimal("0.3"))]
    assert report.top_models == [("b/y", Decimal("0.6"), 2), ("a/x", Decimal("0.2"), 1)]
    plain = await quotas.usage(1, 7, details=False)
    assert plain.top_members == [] and plain.top_models == []
    if db.dialect == "sqlite":
        plan = await db.fetchall("EXPLAIN QUERY PLAN SELECT spent_nusd FROM spend_totals "
                                 "WHERE guild_id = 1 AND month = '2026-11' AND user_id = 7")
        assert "USING INDEX" in " ".join(str(tuple(r)) for r in plan) or "PRIMARY KEY" in str([tuple(r) for r in plan])


async def test_a_cost_above_its_hold_is_counted_and_shown_to_moderators(db: Database) -> None:
    quotas = service(db, Clock(NOV))
    held = await quotas.reserve(guild_id=1, user_id=7, model="m/x", pricing=PRICING, prompt_tokens=1000, images=0,
                                max_tokens=1000)
    fine = await quotas.reserve(guild_id=1, user_id=7, model="m/x", pricing=PRICING, prompt_tokens=10, images=0,
                                max_tokens=10)
    assert isinstance(held, Reservation) and isinstance(fine, Reservation)
    await quotas.settle(held.id, 1, held.amount + Decimal("0.0021"), source=CostSource.USAGE, model="m/x",
                        fallback=held.amount)
    await quotas.settle(fine.id, 1, fine.amount / 2, source=CostSource.USAGE, model="m/x", fallback=fine.amount)
    report = await quotas.usage(1, 7, details=True)
    assert (report.over_holds, report.over_holds_by) == (1, Decimal("0.0021"))
    assert report.guild_spent == held.amount + Decimal("0.0021") + fine.amount / 2  # the extra still counts
    assert (await quotas.usage(1, 7, details=False)).over_holds == 0  # members do not see it


async def test_an_unknown_price_is_refused_under_a_quota_and_never_capped_without_one(db: Database) -> None:
    refused = await service(db, Clock(NOV)).reserve(guild_id=1, user_id=7, model="acme/router", pricing=None,
                                                    prompt_tokens=10, images=0, max_tokens=100)
    assert isinstance(refused, QuotaRefusal) and "does not list a fixed price for `acme/router`" in refused.message
    unlimited = service(db, Clock(NOV), guild=None, member=None)
    held = await unlimited.reserve(guild_id=1, user_id=7, model="acme/router", pricing=None, prompt_tokens=10,
                                   images=0, max_tokens=100)
    assert isinstance(held, Reservation) and held.amount == 0 and held.price_cap is None
    capped = await service(db, Clock(NOV)).reserve(guild_id=1, user_id=7, model="m/x", pricing=PRICING,
                                                   prompt_tokens=10, images=0, max_tokens=100)
    assert isinstance(capped, Reservation) and capped.price_cap is not None
    assert capped.price_cap.to_body() == {"prompt": "1", "completion": "2", "request": "0", "image": "0"}


def test_the_worst_case_stands_in_the_dearest_allowed_price_for_an_unknown_one() -> None:
    from bot.openrouter.types import ModelInfo

    def model(model_id: str, prompt: str, completion: str, modalities: tuple[str, ...] = ("text", "file")
              ) -> ModelInfo:
        return ModelInfo.from_wire({"id": model_id, "pricing": {"prompt": prompt, "completion": completion},
                                    "architecture": {"input_modalities": list(modalities)}})

    router, cheap = model("r/x", "-1", "-1"), model("c/x", "0.000001", "0.000002")
    dear = model("d/x", "0.00001", "0.00003")
    assert Pricing.worst_of([cheap]) == Pricing(Decimal("0.000001"), Decimal("0.000002"))
    assert Pricing.worst_of([router]) is None and Pricing.worst_of([router], [router]) is None
    assert Pricing.worst_of([router, cheap], [cheap, dear]) == Pricing(Decimal("0.00001"), Decimal("0.00003"))
    assert Pricing.worst_of([cheap], [dear]) == Pricing(Decimal("0.000001"), Decimal("0.000002"))  # known: kept


async def test_a_message_dearer_than_what_is_left_is_told_so_not_that_the_budget_is_spent(db: Database) -> None:
    quotas = service(db, Clock(NOV), guild="10", member="2")
    refused = await quotas.reserve(guild_id=1, user_id=7, model="m/x", pricing=PRICING, prompt_tokens=3_000_000,
                                   images=0, max_tokens=1000)  # $3 of prompt alone against $2
    assert isinstance(refused, QuotaRefusal)
    assert refused.message.startswith("This message could cost up to $3.00 at worst-case prices")
    assert "more than the $2.00 left of your $2.00 for November" in refused.message
