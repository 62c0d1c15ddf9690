"""fabula.billing.v1.BillingService: proto <-> domain, one transaction per call."""

from __future__ import annotations

from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula_common.db import Database
from fabula_common.money import format_usd, from_money, parse_usd, to_money

from fabula_billing.usage import reports
from fabula_billing.usage.service import BillingService, Usage, parse_uuid


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, db: Database, billing: BillingService) -> None:
        self.db = db
        self.billing = billing
        # Reserving is one self-contained statement in the usual case: no
        # BEGIN and COMMIT around it (see BillingService.reserve_generation).
        self.autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def ReserveGeneration(self, request: billing_pb2.ReserveGenerationRequest, context):
        user_id = parse_uuid(request.user_id, "user_id")
        # Unset: the caller has no estimate and billing applies its configured
        # one. A caller of the previous release sends a decimal string instead.
        if request.HasField("estimated_cost"):
            estimate = from_money(request.estimated_cost, field="estimated_cost")
        elif request.estimated_cost_usd.strip():
            estimate = parse_usd(request.estimated_cost_usd, field="estimated_cost_usd")
        else:
            estimate = None
        reservation_id = (
            parse_uuid(request.reservation_id, "reservation_id") if request.reservation_id else None
        )
        reservation = await self.billing.reserve_generation(
            self.autocommit, user_id, estimate, reservation_id, cost_only=request.cost_only
        )
        return billing_pb2.Reservation(
            reservation_id=str(reservation.reservation_id), expires_at=reservation.expires_at
        )

    async def ReleaseReservation(self, request: billing_pb2.ReleaseReservationRequest, context):
        user_id = parse_uuid(request.user_id, "user_id")
        reservation_id = parse_uuid(request.reservation_id, "reservation_id")
        async with self.db.session_scope() as session:
            released = await self.billing.release_reservation(session, user_id, reservation_id)
        return billing_pb2.ReleaseReservationResponse(released=released)

    async def GetUsage(self, request: billing_pb2.GetUsageRequest, context):
        user_id = parse_uuid(request.user_id, "user_id")
        async with self.db.session_scope() as session:
            usage = await self.billing.get_usage(session, user_id)
        return usage_summary(usage)

    async def ListUsageLogs(self, request: billing_pb2.ListUsageLogsRequest, context):
        user_id = parse_uuid(request.user_id, "user_id")
        limit = reports.page_size(request.limit)
        async with self.db.session_scope() as session:
            page = await reports.list_usage_logs(session, user_id, limit, request.cursor)
        return billing_pb2.ListUsageLogsResponse(
            logs=[_usage_log_to_proto(log) for log in page.logs], next_cursor=page.next_cursor
        )

    async def GetUsageBreakdown(self, request: billing_pb2.GetUsageBreakdownRequest, context):
        user_id = parse_uuid(request.user_id, "user_id")
        async with self.db.session_scope() as session:
            # The account's current period (opened or rolled over as GetUsage does).
            usage = await self.billing.get_usage(session, user_id)
            breakdown = await reports.usage_breakdown(
                session, user_id, usage.period_start, usage.period_end
            )
        return billing_pb2.UsageBreakdown(
            period_start=usage.period_start,
            period_end=usage.period_end,
            by_model=[_breakdown_row_to_proto(row) for row in breakdown.by_model],
            by_operation=[_breakdown_row_to_proto(row) for row in breakdown.by_operation],
            total=_breakdown_row_to_proto(breakdown.total),
            by_production_type=[
                _breakdown_row_to_proto(row) for row in breakdown.by_production_type
            ],
        )


def usage_summary(usage: Usage) -> billing_pb2.UsageSummary:
    summary = billing_pb2.UsageSummary(
        plan=usage.plan_name,
        period_start=usage.period_start,
        period_end=usage.period_end,
        generations_used=usage.generations_used,
        generations_reserved=usage.generations_reserved,
        cost_used=to_money(usage.cost_used_usd),
        # For callers of the previous release (the deprecated strings).
        cost_used_usd=format_usd(usage.cost_used_usd),
    )
    # Left unset (not zero) on an unlimited plan.
    if usage.plan.generations_limit is not None:
        summary.generations_limit = usage.plan.generations_limit
    if usage.plan.cost_limit_usd is not None:
        summary.cost_limit.CopyFrom(to_money(usage.plan.cost_limit_usd))
        summary.cost_limit_usd = format_usd(usage.plan.cost_limit_usd)
    return summary


def _usage_log_to_proto(log: reports.UsageLog) -> billing_pb2.UsageLog:
    return billing_pb2.UsageLog(
        id=str(log.id),
        created_at=log.occurred_at,
        operation=log.operation,
        story_id=log.story_id,
        provider=log.provider,
        model=log.model,
        prompt_tokens=log.prompt_tokens,
        completion_tokens=log.completion_tokens,
        cost=to_money(log.cost_usd),
        estimated=log.estimated,
        outcome=log.outcome,
        counted=log.counted,
        generation_id=log.generation_id,
        attributes=log.attributes,
    )


def _breakdown_row_to_proto(row: reports.BreakdownRow) -> billing_pb2.UsageBreakdownRow:
    return billing_pb2.UsageBreakdownRow(
        key=row.key,
        provider=row.provider,
        generations=row.generations,
        calls=row.calls,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost=to_money(row.cost_usd),
    )
