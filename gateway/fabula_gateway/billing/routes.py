"""The plan and its usage (billing service)."""

from __future__ import annotations

from typing import Annotated

from fabula.billing.v1 import billing_pb2
from fastapi import APIRouter, Query

from fabula_gateway.billing.mappers import (
    usage_breakdown_from_proto,
    usage_from_proto,
    usage_log_page_from_proto,
)
from fabula_gateway.billing.schemas import Usage, UsageBreakdown, UsageLogPage
from fabula_gateway.dependencies import Clients, CurrentUserId
from fabula_gateway.openapi import problem_responses

router = APIRouter(tags=["usage"])


@router.get(
    "/v1/usage",
    operation_id="get_usage",
    response_model=Usage,
    summary="Usage this period",
    description="The user's plan, the current billing period and what it has used: "
    "generations and their cost. `generations_used` is true the moment a call returns: "
    "it includes `generations_in_progress`, those whose usage is not settled yet. "
    "Limits are null when the plan is unlimited.",
    responses=problem_responses(401, 500, 503),
)
async def get_usage(user_id: CurrentUserId, clients: Clients) -> Usage:
    reply = await clients.billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    return usage_from_proto(reply)


@router.get(
    "/v1/usage/logs",
    operation_id="list_usage_logs",
    response_model=UsageLogPage,
    summary="List usage logs",
    description="Every model call recorded for the user, newest first: what it was for, "
    "the model, its tokens and cost, and whether it counted against the plan. Follow "
    "`next_cursor` for further pages.",
    responses=problem_responses(401, 422, 500, 503),
)
async def list_usage_logs(
    user_id: CurrentUserId,
    clients: Clients,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[
        str | None,
        Query(max_length=512, description="`next_cursor` of the previous page."),
    ] = None,
) -> UsageLogPage:
    reply = await clients.billing.ListUsageLogs(
        billing_pb2.ListUsageLogsRequest(user_id=user_id, limit=limit, cursor=cursor or "")
    )
    return usage_log_page_from_proto(reply)


@router.get(
    "/v1/usage/breakdown",
    operation_id="get_usage_breakdown",
    response_model=UsageBreakdown,
    summary="Usage this period per model and operation",
    description="The current period's recorded model calls summed per model and per "
    "operation: generations counted, calls, tokens and cost. `total.cost_usd` equals "
    "`cost_used_usd` of /v1/usage and the sum of the period's usage logs.",
    responses=problem_responses(401, 500, 503),
)
async def get_usage_breakdown(user_id: CurrentUserId, clients: Clients) -> UsageBreakdown:
    reply = await clients.billing.GetUsageBreakdown(
        billing_pb2.GetUsageBreakdownRequest(user_id=user_id)
    )
    return usage_breakdown_from_proto(reply)
