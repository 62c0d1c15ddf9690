"""US-dollar amounts travel as decimal strings and are stored as NUMERIC."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from fabula_common.errors import InvalidArgument

USD_QUANTUM = Decimal("0.000000001")


def parse_usd(value: str | None, *, field: str = "amount") -> Decimal:
    if not value:
        return Decimal(0)
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise InvalidArgument(f"{field} must be a decimal number of US dollars") from None
    if not amount.is_finite() or amount < 0:
        raise InvalidArgument(f"{field} must be a non-negative amount")
    try:
        return amount.quantize(USD_QUANTUM)
    except InvalidOperation:
        # Too many digits for the decimal context once given nine decimal places.
        raise InvalidArgument(f"{field} is too large") from None


def format_usd(amount: Decimal) -> str:
    return format(amount.quantize(USD_QUANTUM).normalize(), "f")
