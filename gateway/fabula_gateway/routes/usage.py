"""The plan and its usage (billing service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from fabula.billing.v1 import billing_pb2
from fabula_gateway.auth import CurrentUserId
from fabula_gateway.clients import ServiceClients, get_clients
from fabula_gateway.openapi import problem_responses
from fabula_gateway.schemas import Usage

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
    user_id: CurrentUserId, clients: Annotated[ServiceClients, Depends(get_clients)]
) -> Usage:
    reply = await clients.billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    return Usage.from_proto(reply)
