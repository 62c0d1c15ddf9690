"""Money on the wire: Decimal <-> fabula.common.v1.Money, exact to the nano."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fabula.common.v1.money_pb2 import Money
from fabula_common.errors import InvalidArgument
from fabula_common.money import MAX_USD, USD_QUANTUM, format_usd, from_money, to_money


@pytest.mark.parametrize(
    ("amount", "units", "nanos"),
    [
        ("0", 0, 0),
        ("0.000000001", 0, 1),
        ("0.0123", 0, 12_300_000),
        ("10", 10, 0),
        ("999999999.999999999", 999_999_999, 999_999_999),
    ],
)
def test_amounts_round_trip_exactly(amount: str, units: int, nanos: int):
    money = to_money(Decimal(amount))

    assert (money.currency_code, money.units, money.nanos) == ("USD", units, nanos)
    assert from_money(money) == Decimal(amount)
    assert format_usd(from_money(money)) == format_usd(Decimal(amount))


def test_amounts_are_rounded_to_the_nano_we_store():
    assert to_money(Decimal("0.0000000014")).nanos == 1
    assert (
        from_money(to_money(Decimal("1.5"))).as_tuple().exponent == USD_QUANTUM.as_tuple().exponent
    )


@pytest.mark.parametrize("amount", ["-0.01", str(MAX_USD)])
def test_amounts_we_cannot_store_are_not_sent(amount: str):
    with pytest.raises(ValueError):
        to_money(Decimal(amount))


@pytest.mark.parametrize(
    ("money", "message"),
    [
        (Money(units=1), "must be in USD"),
        (Money(currency_code="EUR", units=1), "must be in USD"),
        (Money(currency_code="USD", units=-1), "non-negative"),
        (Money(currency_code="USD", nanos=-5), "non-negative"),
        (Money(currency_code="USD", nanos=1_000_000_000), "nanos"),
        (Money(currency_code="USD", units=1_000_000_000), "less than"),
    ],
)
def test_malformed_money_is_an_invalid_argument_naming_the_field(money: Money, message: str):
    with pytest.raises(InvalidArgument, match=message) as refused:
        from_money(money, field="estimated_cost")
    assert "estimated_cost" in refused.value.message
