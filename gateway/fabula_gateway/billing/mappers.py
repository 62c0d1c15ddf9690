"""billing.v1 messages -> public JSON shapes."""

from __future__ import annotations

from fabula.billing.v1 import billing_pb2
from fabula_common.money import format_usd, from_money

from fabula_gateway.billing.schemas import Usage
from fabula_gateway.mappers import to_datetime


def usage_from_proto(usage: billing_pb2.UsageSummary) -> Usage:
    return Usage(
        plan=usage.plan,
        period_start=to_datetime(usage.period_start),
        period_end=to_datetime(usage.period_end),
        generations_used=usage.generations_used,
        generations_limit=usage.generations_limit if usage.HasField("generations_limit") else None,
        # Money on the wire, decimal strings in the public API (as always).
        cost_used_usd=format_usd(from_money(usage.cost_used, field="cost_used")),
        cost_limit_usd=(
            format_usd(from_money(usage.cost_limit, field="cost_limit"))
            if usage.HasField("cost_limit")
            else None
        ),
    )
