"""The plan and its usage (billing service)."""

from __future__ import annotations

from fabula.billing.v1 import billing_pb2
from fastapi import APIRouter

from fabula_gateway.billing.mappers import usage_from_proto
from fabula_gateway.billing.schemas import Usage
from fabula_gateway.dependencies import Clients, CurrentUserId
from fabula_gateway.openapi import problem_responses

router = APIRouter(tags=["usage"])


@router.get(
    "/v1/usage",
    operation_id="get_usage",
    response_model=Usage,
    summary="Usage this period",
    description="The user's plan, the current billing period and what it has used: "
    "generations and their cost. Limits are null when the plan is unlimited.",
    responses=problem_responses(401, 500, 503),
)
async def get_usage(
    user_id: CurrentUserId, clients: Clients
) -> Usage:
    reply = await clients.billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    return usage_from_proto(reply)
