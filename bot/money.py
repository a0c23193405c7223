"""Money is exact: Decimal USD in code, integer nano-dollars in the database, and one way to show it."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

NANO = Decimal(1_000_000_000)
CENT = Decimal("0.01")
TINY = Decimal("0.0001")


def to_nusd(usd: Decimal) -> int:
    """USD to whole nano-dollars, rounded up so that a charge is never understated."""
    return int((usd * NANO).to_integral_value(rounding=ROUND_CEILING))


def from_nusd(nusd: int) -> Decimal:
    return Decimal(nusd) / NANO


def usd(amount: Decimal) -> str:
    """Dollars for people: `$9.87`, four decimals under a cent (`$0.0012`), `<$0.0001` below that."""
    if amount == 0:
        return "$0.00"
    if abs(amount) < TINY:
        return "<$0.0001" if amount > 0 else "-<$0.0001"
    places = TINY if abs(amount) < CENT else CENT
    return f"${amount.quantize(places, ROUND_HALF_UP)}"


def usd_of(spent: Decimal, quota: Decimal | None) -> str:
    """Spending against a limit: `$1.20 of $5.00 (24 %)`; `(no limit)` without one."""
    if quota is None:
        return f"{usd(spent)} (no limit)"
    percent = f" ({spent / quota * 100:.0f} %)" if quota else ""
    return f"{usd(spent)} of {usd(quota)}{percent}"


def per_million(price: Decimal) -> str:
    """A per-token price shown per million tokens: `$2.50`, `$0.075`, or `free`."""
    value = price * 1_000_000
    if value == 0:
        return "free"
    return f"${value:.2f}" if value >= Decimal("0.1") else f"${value:.3f}"
