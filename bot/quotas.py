"""Monthly spend quotas per server and per member: reserve the worst case, settle the real cost.

Before a request, its worst-case cost (estimated prompt tokens × prompt price + max tokens ×
completion price + per-request and image fees) is held atomically against what the server and the
member have left, and `max_tokens` is lowered to what the budget can pay. Afterwards the hold is
replaced by the real cost. Months are calendar months in UTC; the clock is injected.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from bot.costs import affordable_completion_tokens, estimate_cost, web_search_fee
from bot.logs import get_logger
from bot.metrics import Metrics
from bot.money import from_nusd, to_nusd, usd
from bot.openrouter.types import MaxPrice, ModelInfo
from bot.states import CostSource
from bot.store.guilds import GuildRepo
from bot.store.spend import GUILD_ROW, Held, OpenReservation, Settled, Short, SpendRepo

log = get_logger(__name__)
DM_GUILD = 0
MIN_ANSWER_TOKENS = 32
PER_MILLION = 1_000_000
# OpenRouter's mistral-ocr engine: $2 per 1,000 pages, $2.20 on its US regional endpoint (the dearer is held).
PDF_PARSER_FEE_PER_PAGE = Decimal("0.0022")


def month_key(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m")


def month_name(now: datetime) -> str:
    return calendar.month_name[now.astimezone(UTC).month]


def next_reset(now: datetime) -> date:
    now = now.astimezone(UTC)
    return date(now.year + 1, 1, 1) if now.month == 12 else date(now.year, now.month + 1, 1)


def reset_text(now: datetime) -> str:
    reset = next_reset(now)
    return f"{reset.day} {calendar.month_name[reset.month]}"


@dataclass(frozen=True, slots=True)
class Pricing:
    """Worst-case prices (USD per unit) over every model a request may end up on.

    `pdf_page` is the PDF parser's fee per page, when a model that does not read PDFs itself may
    answer: OpenRouter then parses them with its default engine (mistral-ocr), which charges per page.
    """

    prompt: Decimal
    completion: Decimal
    request: Decimal = Decimal(0)
    image: Decimal = Decimal(0)
    pdf_page: Decimal = Decimal(0)
    search: Decimal = Decimal(0)  # a web search's fees, when the answer searches

    @classmethod
    def worst_of(cls, models: Sequence[ModelInfo], stand_ins: Sequence[ModelInfo] = (), *,
                 web_search: bool = False) -> Pricing | None:
        """The dearest prices among `models`. A model whose price is unknown or variable is stood in for
        by the dearest of `stand_ins` (the allowed models); None when no price is known at all, or when
        the answer searches the web and a model's search price is unknown."""
        priced = [m for m in models if m.priced]
        if len(priced) < len(models):
            priced += [m for m in stand_ins if m.priced]
        search = web_search_fee(models) if web_search else Decimal(0)
        if not priced or search is None:
            return None
        parser_fee = PDF_PARSER_FEE_PER_PAGE if any(not m.reads_files for m in models) else Decimal(0)
        return cls(max(m.worst_prompt_price for m in priced), max(m.worst_completion_price for m in priced),
                   max(m.request_price for m in priced), max(m.image_price for m in priced), parser_fee, search)

    def as_model(self) -> ModelInfo:
        return ModelInfo(id="(worst case)", name="", context_length=0, max_completion_tokens=None,
                         prompt_price=self.prompt, completion_price=self.completion, request_price=self.request,
                         image_price=self.image, input_modalities=(), output_modalities=(),
                         supported_parameters=frozenset())

    def cap(self) -> MaxPrice:
        """These prices as OpenRouter's `provider.max_price`, so that no provider bills above them."""
        return MaxPrice(prompt=self.prompt * PER_MILLION, completion=self.completion * PER_MILLION,
                        request=self.request, image=self.image)


@dataclass(frozen=True, slots=True)
class Reservation:
    id: int
    guild_id: int
    user_id: int
    amount: Decimal
    max_tokens: int
    lowered: bool  # max_tokens was lowered to fit the budget
    price_cap: MaxPrice | None = None  # the prices held, when a quota applies: sent as `provider.max_price`
    pdf_pages: int = 0  # the PDF pages held for (the parser's fee applies when the model does not read PDFs)


@dataclass(frozen=True, slots=True)
class QuotaRefusal:
    message: str


@dataclass(frozen=True, slots=True)
class Limits:
    guild_quota: Decimal | None  # None: no limit
    member_quota: Decimal | None

    @property
    def guild_nusd(self) -> int | None:
        return to_nusd(self.guild_quota) if self.guild_quota is not None else None

    @property
    def member_nusd(self) -> int | None:
        return to_nusd(self.member_quota) if self.member_quota is not None else None


@dataclass(frozen=True, slots=True)
class UsageReport:
    month: str
    resets: str
    member_spent: Decimal
    member_quota: Decimal | None
    guild_spent: Decimal
    guild_quota: Decimal | None
    top_members: list[tuple[int, Decimal]]
    top_models: list[tuple[str, Decimal, int]]
    over_holds: int = 0  # answers that cost more than was held for them (details only)
    over_holds_by: Decimal = Decimal(0)


class QuotaService:
    def __init__(self, *, spend: SpendRepo, guilds: GuildRepo, default_guild_quota: Decimal | None,
                 default_member_quota: Decimal | None, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 metrics: Metrics | None = None) -> None:
        self.spend = spend
        self.guilds = guilds
        self.default_guild_quota = default_guild_quota
        self.default_member_quota = default_member_quota
        self.clock = clock
        self.metrics = metrics or Metrics()

    async def limits(self, guild_id: int | None) -> Limits:
        if not guild_id:
            return Limits(self.default_guild_quota, self.default_member_quota)
        settings = await self.guilds.settings(guild_id)
        guild = from_nusd(settings.guild_quota_nusd) if settings.guild_quota_nusd is not None \
            else self.default_guild_quota
        member = from_nusd(settings.member_quota_nusd) if settings.member_quota_nusd is not None \
            else self.default_member_quota
        return Limits(guild, member)

    def refusal_text(self, short: Short, now: datetime, needed_nusd: int = 0) -> str:
        spent, quota = usd(from_nusd(short.spent_nusd)), usd(from_nusd(short.quota_nusd))
        when = f"for {month_name(now)}; it resets on {reset_text(now)}"
        left = short.quota_nusd - short.spent_nusd
        if short.quota_nusd and needed_nusd > left and short.spent_nusd * 2 < short.quota_nusd:  # too dear alone
            whose = "this server's" if short.scope == "server" else "your"
            return (f"This message could cost up to {usd(from_nusd(needed_nusd))} at worst-case prices (its text, "
                    f"files and a short answer), more than the {usd(from_nusd(left))} left of "
                    f"{whose} {quota} {when}. Shorten it, send fewer files, or pick a cheaper model with `/model`.")
        if short.quota_nusd == 0:
            who = "This server" if short.scope == "server" else "You"
            return f"{who} cannot spend anything on models this month (the limit is $0.00). " \
                   f"Free models (`*:free`) still work. It resets on {reset_text(now)}."
        if short.scope == "server":
            return f"This server has used {spent} of its {quota} {when}."
        return f"You have used {spent} of your {quota} {when}."

    async def reserve(self, *, guild_id: int | None, user_id: int, model: str, pricing: Pricing | None,
                      prompt_tokens: int, images: int, max_tokens: int, pdf_pages: int = 0
                      ) -> Reservation | QuotaRefusal:
        """Hold the worst case of a request at `pricing` (None: unknown) against both budgets, atomically."""
        now = self.clock()
        limits = await self.limits(guild_id)
        limited = limits.guild_quota is not None or limits.member_quota is not None
        if pricing is None and limited:
            return QuotaRefusal(f"OpenRouter does not list a fixed price for `{model}`, so it cannot be used while "
                                f"a spending limit applies here. Pick a model with a listed price with `/model`.")
        worst = (pricing or Pricing(Decimal(0), Decimal(0))).as_model()
        fees = pricing.pdf_page * pdf_pages + pricing.search if pricing else Decimal(0)
        chosen = {"max_tokens": max_tokens}

        def cost(tokens: int) -> int:
            amount = estimate_cost(worst, prompt_tokens=prompt_tokens, completion_tokens=tokens, images=images,
                                   fees=fees)
            assert amount is not None  # the worst case is always priced
            return to_nusd(amount)

        def size(available: int | None) -> int | None:
            if available is None:
                return cost(max_tokens)
            affordable = affordable_completion_tokens(worst, from_nusd(available), prompt_tokens=prompt_tokens,
                                                      images=images, fees=fees)
            tokens = min(max_tokens, affordable)
            if tokens < min(MIN_ANSWER_TOKENS, max_tokens):
                return None
            chosen["max_tokens"] = tokens
            amount = cost(tokens)
            return min(amount, available) if amount - available <= 1 else amount

        result = await self.spend.reserve(
            guild_id=guild_id or DM_GUILD, user_id=user_id, month=month_key(now), model=model,
            guild_quota_nusd=limits.guild_nusd, member_quota_nusd=limits.member_nusd,
            size=size)
        if isinstance(result, Short):
            log.info("request refused by quota", scope=result.scope, spent=result.spent_nusd, quota=result.quota_nusd)
            return QuotaRefusal(self.refusal_text(result, now, cost(min(MIN_ANSWER_TOKENS, max_tokens))))
        assert isinstance(result, Held)
        return Reservation(result.id, guild_id or DM_GUILD, user_id, from_nusd(result.amount_nusd),
                           chosen["max_tokens"], chosen["max_tokens"] < max_tokens,
                           pricing.cap() if pricing is not None and limited else None, pdf_pages)

    async def link_turn(self, reservation: Reservation, turn_id: int) -> None:
        await self.spend.link_turn(reservation.id, turn_id)

    async def settle(self, reservation_id: int, guild_id: int, cost: Decimal | None, *, source: CostSource,
                     model: str | None, fallback: Decimal) -> tuple[Settled | None, list[str]]:
        """Settle a hold to the real cost (`fallback`, the held amount, when the cost is unknown)."""
        now = self.clock()
        limits = await self.limits(guild_id or None)
        actual = cost if cost is not None else fallback
        settled = await self.spend.settle(
            reservation_id, to_nusd(actual), source=source if cost is not None else CostSource.RESERVED, model=model,
            guild_quota_nusd=limits.guild_nusd, member_quota_nusd=limits.member_nusd)
        warnings: list[str] = []
        if settled is not None and settled.amount_nusd > settled.held_nusd:
            log.warning("an answer cost more than its hold", reservation=reservation_id, source=source,
                        cost=str(actual), held=str(from_nusd(settled.held_nusd)))
        if settled is not None:
            self.metrics.spent(guild_id, from_nusd(settled.amount_nusd))
            if settled.warn_guild and limits.guild_quota:
                warnings.append(f"This server has now used {usd(from_nusd(settled.guild_spent_nusd))} of its "
                                f"{usd(limits.guild_quota)} for {month_name(now)} (over 80 %).")
            if settled.warn_member and limits.member_quota:
                warnings.append(f"You have now used {usd(from_nusd(settled.member_spent_nusd))} of your "
                                f"{usd(limits.member_quota)} for {month_name(now)} (over 80 %).")
        return settled, warnings

    async def open_reservations(self) -> list[OpenReservation]:
        return await self.spend.open_reservations()

    async def usage(self, guild_id: int | None, user_id: int, *, details: bool) -> UsageReport:
        now = self.clock()
        month = month_key(now)
        gid = guild_id or DM_GUILD
        limits = await self.limits(guild_id)
        member = await self.spend.totals(gid, month, user_id)
        guild = await self.spend.totals(gid, month, GUILD_ROW)
        top_members = [(uid, from_nusd(n)) for uid, n in await self.spend.top_members(gid, month)] if details else []
        top_models = [(m, from_nusd(n), r) for m, n, r in await self.spend.top_models(gid, month)] if details else []
        over, over_by = await self.spend.over_holds(gid, month) if details else (0, 0)
        return UsageReport(f"{month_name(now)} {now.year}", reset_text(now), from_nusd(member.spent_nusd),
                           limits.member_quota, from_nusd(guild.spent_nusd), limits.guild_quota, top_members,
                           top_models, over, from_nusd(over_by))
