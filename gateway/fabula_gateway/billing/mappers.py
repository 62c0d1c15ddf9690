"""billing.v1 messages -> public JSON shapes."""

from __future__ import annotations

from fabula.billing.v1 import billing_pb2
from fabula.common.v1.money_pb2 import Money
from fabula_common.money import format_usd, from_money

from fabula_gateway.billing.schemas import (
    ModelUsage,
    OperationUsage,
    ProductionTypeUsage,
    Usage,
    UsageBreakdown,
    UsageLog,
    UsageLogPage,
    UsageTotals,
)
from fabula_gateway.mappers import to_datetime


def usd(money: Money, field: str) -> str:
    """Money on the wire, decimal strings in the public API (as always)."""
    return format_usd(from_money(money, field=field))


def usage_from_proto(usage: billing_pb2.UsageSummary) -> Usage:
    return Usage(
        plan=usage.plan,
        period_start=to_datetime(usage.period_start),
        period_end=to_datetime(usage.period_end),
        # A reserved generation already counts against the plan (billing
        # refuses the next one with it): the user sees it at once.
        generations_used=usage.generations_used + usage.generations_reserved,
        generations_in_progress=usage.generations_reserved,
        generations_limit=usage.generations_limit if usage.HasField("generations_limit") else None,
        cost_used_usd=usd(usage.cost_used, "cost_used"),
        cost_limit_usd=(
            usd(usage.cost_limit, "cost_limit") if usage.HasField("cost_limit") else None
        ),
    )


def usage_log_from_proto(log: billing_pb2.UsageLog) -> UsageLog:
    return UsageLog(
        id=log.id,
        created_at=to_datetime(log.created_at),
        operation=log.operation,
        story_id=log.story_id or None,
        provider=log.provider,
        model=log.model,
        prompt_tokens=log.prompt_tokens,
        completion_tokens=log.completion_tokens,
        cost_usd=usd(log.cost, "cost"),
        estimated=log.estimated,
        outcome=log.outcome,
        counted=log.counted,
        generation_id=log.generation_id,
        attributes=dict(log.attributes),
        production_type=log.attributes.get("production_type") or None,
    )


def usage_log_page_from_proto(reply: billing_pb2.ListUsageLogsResponse) -> UsageLogPage:
    return UsageLogPage(
        items=[usage_log_from_proto(log) for log in reply.logs],
        next_cursor=reply.next_cursor or None,
    )


def _totals(row: billing_pb2.UsageBreakdownRow) -> dict:
    return {
        "generations": row.generations,
        "calls": row.calls,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cost_usd": usd(row.cost, "cost"),
    }


def usage_breakdown_from_proto(breakdown: billing_pb2.UsageBreakdown) -> UsageBreakdown:
    return UsageBreakdown(
        period_start=to_datetime(breakdown.period_start),
        period_end=to_datetime(breakdown.period_end),
        by_model=[
            ModelUsage(model=row.key, provider=row.provider, **_totals(row))
            for row in breakdown.by_model
        ],
        by_operation=[
            OperationUsage(operation=row.key, **_totals(row)) for row in breakdown.by_operation
        ],
        by_production_type=[
            ProductionTypeUsage(production_type=row.key, **_totals(row))
            for row in breakdown.by_production_type
        ],
        total=UsageTotals(**_totals(breakdown.total)),
    )
