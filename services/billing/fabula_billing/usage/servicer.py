"""fabula.billing.v1.BillingService: proto <-> domain, one transaction per call."""

from __future__ import annotations

from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula_common.db import Database
from fabula_common.money import format_usd, from_money, parse_usd, to_money

from fabula_billing.usage.service import BillingService, parse_uuid


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
            self.autocommit, user_id, estimate, reservation_id
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
