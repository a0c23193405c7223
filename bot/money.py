"""Money is exact: Decimal USD in code, integer nano-dollars in the database."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

NANO = Decimal(1_000_000_000)


def to_nusd(usd: Decimal) -> int:
    """USD to whole nano-dollars, rounded up so that a charge is never understated."""
    return int((usd * NANO).to_integral_value(rounding=ROUND_CEILING))


def from_nusd(nusd: int) -> Decimal:
    return Decimal(nusd) / NANO


def usd(amount: Decimal) -> str:
    """Dollars for people: $9.87, or more digits for amounts under a cent."""
    if amount != 0 and abs(amount) < Decimal("0.01"):
        return f"${amount.quantize(Decimal('0.0001'))}"
    return f"${amount.quantize(Decimal('0.01'))}"
