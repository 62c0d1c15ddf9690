"""US-dollar amounts: Decimal in code, NUMERIC(18, 9) in the database, and
fabula.common.v1.Money (google.type.Money's shape: units and nanos) on the
wire. Public JSON keeps decimal strings (format_usd)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from fabula.common.v1 import money_pb2

from fabula_common.errors import InvalidArgument

USD = "USD"
USD_QUANTUM = Decimal("0.000000001")
# NUMERIC(18, 9) holds less than a billion dollars.
MAX_USD = Decimal("1000000000")
_NANOS_PER_UNIT = 1_000_000_000


def format_usd(amount: Decimal) -> str:
    """The decimal string of an amount, as the public API and logs show it."""
    return format(amount.quantize(USD_QUANTUM).normalize(), "f")


def to_money(amount: Decimal) -> money_pb2.Money:
    """A non-negative dollar amount below MAX_USD as Money, to the nano
    (ValueError otherwise: our own amounts are always valid)."""
    amount = amount.quantize(USD_QUANTUM)
    if not Decimal(0) <= amount < MAX_USD:
        raise ValueError(f"not a storable US-dollar amount: {amount}")
    units = int(amount)
    nanos = int((amount - units) * _NANOS_PER_UNIT)
    return money_pb2.Money(currency_code=USD, units=units, nanos=nanos)


def from_money(money: money_pb2.Money, *, field: str = "amount") -> Decimal:
    """The Decimal amount of `money`; InvalidArgument naming `field` unless it
    is a well-formed, non-negative US-dollar amount below MAX_USD."""
    if money.currency_code != USD:
        raise InvalidArgument(f"{field} must be in {USD}, not {money.currency_code!r}")
    if money.units < 0 or money.nanos < 0:
        raise InvalidArgument(f"{field} must be a non-negative amount")
    if money.nanos >= _NANOS_PER_UNIT:
        raise InvalidArgument(f"{field}.nanos must be less than {_NANOS_PER_UNIT}")
    amount = Decimal(money.units) + Decimal(money.nanos) * USD_QUANTUM
    if amount >= MAX_USD:
        raise InvalidArgument(f"{field} must be less than {MAX_USD} US dollars")
    return amount.quantize(USD_QUANTUM)


def parse_usd(value: str, *, field: str = "amount") -> Decimal:
    """The Decimal amount of a decimal string of US dollars, the way contracts
    of the previous release carry money; InvalidArgument naming `field` unless
    it is a non-negative amount below MAX_USD. Remove with those fields."""
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise InvalidArgument(f"{field} must be a decimal number of US dollars") from None
    if not amount.is_finite():
        raise InvalidArgument(f"{field} must be a decimal number of US dollars")
    if amount < 0:
        raise InvalidArgument(f"{field} must be a non-negative amount")
    # Compared before rounding too: quantize fails on a huge exponent.
    if amount >= MAX_USD or amount.quantize(USD_QUANTUM) >= MAX_USD:
        raise InvalidArgument(f"{field} must be less than {MAX_USD} US dollars")
    return amount.quantize(USD_QUANTUM)
