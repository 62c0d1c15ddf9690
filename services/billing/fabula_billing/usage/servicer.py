"""fabula.billing.v1.BillingService: proto <-> domain, one transaction per call."""

from __future__ import annotations

from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula_common.db import Database
from fabula_common.money import format_usd

from fabula_billing.usage.service import BillingService, parse_amount, parse_uuid


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, db: Database, billing: BillingService) -> None:
        self.db = db
        self.billing = billing

    async def ReserveGeneration(self, request: billing_pb2.ReserveGenerationRequest, context):
        user_id = parse_uuid(request.user_id, "user_id")
        # Empty: the caller has no estimate and billing applies its configured one.
        estimate = (
            parse_amount(request.estimated_cost_usd, "estimated_cost_usd")
            if request.estimated_cost_usd.strip()
            else None
        )
        async with self.db.session_scope() as session:
            reservation = await self.billing.reserve_generation(session, user_id, estimate)
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
            cost_used_usd=format_usd(usage.cost_used_usd),
        )
        # Left unset (not zero) on an unlimited plan.
        if usage.plan.generations_limit is not None:
            summary.generations_limit = usage.plan.generations_limit
        if usage.plan.cost_limit_usd is not None:
            summary.cost_limit_usd = format_usd(usage.plan.cost_limit_usd)
        return summary
