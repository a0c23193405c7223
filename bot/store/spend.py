"""Every SQL statement about spending: running totals, reservations and their settlement.

A reservation reads what is left and writes its hold in one transaction that first claims the
server's own row for the month (an upsert that changes nothing). On SQLite the transaction is already
alone (`BEGIN IMMEDIATE` holds the file's write lock); on PostgreSQL the claim row-locks that row until
commit, so reservations and settlements for the same server take turns, across processes too, and each
one reads the totals as the one before left them. So concurrent requests see each other's holds and the
settled total cannot pass a quota. Rows are always locked server row first, then the member's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.states import CostSource
from bot.store.database import Database

GUILD_ROW = 0  # user_id of a server's own total; guild_id 0 holds direct messages


@dataclass(frozen=True, slots=True)
class Totals:
    spent_nusd: int = 0
    reserved_nusd: int = 0
    requests: int = 0
    warned: bool = False


@dataclass(frozen=True, slots=True)
class Held:
    """A reservation made: its id and the amount held."""

    id: int
    amount_nusd: int
    available_nusd: int | None  # what was left before this hold (None: no limit)


@dataclass(frozen=True, slots=True)
class Short:
    """No reservation: the server's or the member's budget is used up."""

    scope: str  # "server" or "member"
    spent_nusd: int
    quota_nusd: int


@dataclass(frozen=True, slots=True)
class Settled:
    amount_nusd: int
    held_nusd: int
    guild_spent_nusd: int
    member_spent_nusd: int
    warn_guild: bool  # crossed 80 % of the server's quota just now (first time this month)
    warn_member: bool


@dataclass(frozen=True, slots=True)
class OpenReservation:
    id: int
    guild_id: int
    user_id: int
    month: str
    model: str
    amount_nusd: int
    turn_id: int | None


class SpendRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def totals(self, guild_id: int, month: str, user_id: int = GUILD_ROW) -> Totals:
        row = await self.db.fetchone(
            "SELECT spent_nusd, reserved_nusd, requests, warned FROM spend_totals "
            "WHERE guild_id = ? AND month = ? AND user_id = ?", (guild_id, month, user_id))
        return Totals(row[0], row[1], row[2], bool(row[3])) if row else Totals()

    async def top_members(self, guild_id: int, month: str, limit: int = 5) -> list[tuple[int, int]]:
        rows = await self.db.fetchall(
            "SELECT user_id, spent_nusd FROM spend_totals WHERE guild_id = ? AND month = ? AND user_id != 0 "
            "AND spent_nusd > 0 ORDER BY spent_nusd DESC LIMIT ?", (guild_id, month, limit))
        return [(r[0], r[1]) for r in rows]

    async def top_models(self, guild_id: int, month: str, limit: int = 5) -> list[tuple[str, int, int]]:
        rows = await self.db.fetchall(
            "SELECT model, spent_nusd, requests FROM model_spend WHERE guild_id = ? AND month = ? "
            "ORDER BY spent_nusd DESC LIMIT ?", (guild_id, month, limit))
        return [(r[0], r[1], r[2]) for r in rows]

    async def reserve(self, *, guild_id: int, user_id: int, month: str, model: str, guild_quota_nusd: int | None,
                      member_quota_nusd: int | None, size: Callable[[int | None], int | None]) -> Held | Short:
        """Hold an amount against both budgets, atomically.

        `size(available)` gets what is left (None: unlimited) and returns the amount to hold, or None
        when that is not enough for a useful answer.
        """
        if user_id == GUILD_ROW:
            raise ValueError("user id 0 is reserved for a server's own total")
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO spend_totals (guild_id, month, user_id) VALUES (?, ?, ?) ON CONFLICT "
                "(guild_id, month, user_id) DO UPDATE SET requests = spend_totals.requests",  # takes the row lock
                (guild_id, month, GUILD_ROW))
            guild = await self._totals(tx, guild_id, month, GUILD_ROW)
            member = await self._totals(tx, guild_id, month, user_id)
            left: list[tuple[str, int, int, int]] = []  # (scope, available, spent, quota)
            if guild_quota_nusd is not None:
                left.append(("server", guild_quota_nusd - guild.spent_nusd - guild.reserved_nusd,
                             guild.spent_nusd, guild_quota_nusd))
            if member_quota_nusd is not None:
                left.append(("member", member_quota_nusd - member.spent_nusd - member.reserved_nusd,
                             member.spent_nusd, member_quota_nusd))
            tightest = min(left, key=lambda item: item[1]) if left else None
            available = max(0, tightest[1]) if tightest else None
            amount = size(available)
            if amount is None or (available is not None and amount > available):
                assert tightest is not None
                return Short(tightest[0], tightest[2], tightest[3])
            reservation_id = await tx.insert(
                "INSERT INTO reservations (guild_id, user_id, month, model, amount_nusd) VALUES (?, ?, ?, ?, ?)",
                (guild_id, user_id, month, model, amount))
            for uid in (GUILD_ROW, user_id):
                await tx.execute(
                    "INSERT INTO spend_totals (guild_id, month, user_id, reserved_nusd) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (guild_id, month, user_id) "
                    "DO UPDATE SET reserved_nusd = spend_totals.reserved_nusd + ?",
                    (guild_id, month, uid, amount, amount))
            return Held(reservation_id, amount, available)

    async def link_turn(self, reservation_id: int, turn_id: int) -> None:
        await self.db.execute("UPDATE reservations SET turn_id = ? WHERE id = ?", (turn_id, reservation_id))

    async def settle(self, reservation_id: int, actual_nusd: int, *, source: CostSource, model: str | None,
                     guild_quota_nusd: int | None, member_quota_nusd: int | None) -> Settled | None:
        """Replace a hold by the real cost (once; a second call does nothing and returns None)."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT guild_id, user_id, month, model, amount_nusd FROM reservations "
                "WHERE id = ? AND settled_at IS NULL", (reservation_id,))
            if row is None:
                return None
            guild_id, user_id, month, reserved_model, amount = tuple(row)
            await tx.execute(
                "UPDATE reservations SET settled_nusd = ?, settled_from = ?, "
                "settled_at = now_utc() WHERE id = ?",
                (actual_nusd, source, reservation_id))
            for uid in (GUILD_ROW, user_id):
                await tx.execute(
                    "UPDATE spend_totals SET reserved_nusd = reserved_nusd - ?, spent_nusd = spent_nusd + ?, "
                    "requests = requests + 1 WHERE guild_id = ? AND month = ? AND user_id = ?",
                    (amount, actual_nusd, guild_id, month, uid))
            await tx.execute(
                "INSERT INTO model_spend (guild_id, month, model, spent_nusd, requests) VALUES (?, ?, ?, ?, 1) "
                "ON CONFLICT (guild_id, month, model) DO UPDATE SET spent_nusd = model_spend.spent_nusd + ?, "
                "requests = model_spend.requests + 1",
                (guild_id, month, model or reserved_model, actual_nusd, actual_nusd))
            guild = await self._totals(tx, guild_id, month, GUILD_ROW)
            member = await self._totals(tx, guild_id, month, user_id)
            warn_guild = await self._warn_once(tx, guild_id, month, GUILD_ROW, guild, guild_quota_nusd)
            warn_member = await self._warn_once(tx, guild_id, month, user_id, member, member_quota_nusd)
            return Settled(actual_nusd, amount, guild.spent_nusd, member.spent_nusd, warn_guild, warn_member)

    async def over_holds(self, guild_id: int, month: str) -> tuple[int, int]:
        """How many answers this month cost more than their hold, and by how much in all."""
        row = await self.db.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(settled_nusd - amount_nusd), 0) FROM reservations "
            "WHERE guild_id = ? AND month = ? AND settled_nusd > amount_nusd", (guild_id, month))
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def open_reservations(self) -> list[OpenReservation]:
        rows = await self.db.fetchall(
            "SELECT id, guild_id, user_id, month, model, amount_nusd, turn_id FROM reservations "
            "WHERE settled_at IS NULL ORDER BY id")
        return [OpenReservation(*tuple(r)) for r in rows]

    @staticmethod
    async def _totals(tx: Database, guild_id: int, month: str, user_id: int) -> Totals:
        row = await tx.fetchone(
            "SELECT spent_nusd, reserved_nusd, requests, warned FROM spend_totals "
            "WHERE guild_id = ? AND month = ? AND user_id = ?", (guild_id, month, user_id))
        return Totals(row[0], row[1], row[2], bool(row[3])) if row else Totals()

    @staticmethod
    async def _warn_once(tx: Database, guild_id: int, month: str, user_id: int, totals: Totals,
                         quota: int | None) -> bool:
        if not quota or totals.warned or totals.spent_nusd * 5 < quota * 4:
            return False
        await tx.execute("UPDATE spend_totals SET warned = 1 WHERE guild_id = ? AND month = ? AND user_id = ?",
                         (guild_id, month, user_id))
        return True
