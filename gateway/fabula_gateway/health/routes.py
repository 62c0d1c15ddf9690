"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request

from fabula_gateway.clients import SERVING
from fabula_gateway.dependencies import Clients
from fabula_gateway.health.schemas import Liveness, Readiness
from fabula_gateway.openapi import problem_responses
from fabula_gateway.problems import NOT_READY, RETRY_AFTER_SECONDS, ProblemError

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    operation_id="check_liveness",
    response_model=Liveness,
    summary="Liveness",
    description="200 while the process is up; asks no backend.",
)
async def check_liveness() -> Liveness:
    return Liveness()


@router.get(
    "/readyz",
    operation_id="check_readiness",
    response_model=Readiness,
    summary="Readiness",
    description="200 only when every backend service answers its gRPC health check "
    "with SERVING; otherwise 503 naming the ones that do not, with every service's "
    "status in `services`.",
    responses=problem_responses(503, s503="A backend service is not serving."),
)
async def check_readiness(
    request: Request, clients: Clients
) -> Readiness:
    services = await clients.health(request.app.state.settings.readiness_timeout_seconds)
    not_serving = [name for name, status in services.items() if status != SERVING]
    if not_serving:
        raise ProblemError(
            NOT_READY,
            "Not serving: " + ", ".join(not_serving) + ".",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            extensions={"services": services},
        )
    return Readiness(services=services)
