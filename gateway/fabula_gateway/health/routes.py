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
    description="Every backend service's gRPC health, asked in parallel. 200 while the "
    "gateway can serve anything: `ready` when every service is serving, `degraded` "
    "(naming the others in `unavailable`) when only some are; the routes of a missing "
    "service answer 503 on their own, so one service down never takes the whole API "
    "out of its load balancer. 503 only when no service is serving. `dependencies` "
    "shows what each service reports of its own dependencies (Postgres, NATS): a "
    "service is not serving while its database is down, and keeps serving (its "
    "events wait) while NATS is down.",
    responses=problem_responses(503, s503="No backend service is serving."),
)
async def check_readiness(request: Request, clients: Clients) -> Readiness:
    health = await clients.health(request.app.state.settings.readiness_timeout_seconds)
    services = health.services
    unavailable = [name for name, status in services.items() if status != SERVING]
    if len(unavailable) == len(services):
        raise ProblemError(
            NOT_READY,
            "Not serving: " + ", ".join(unavailable) + ".",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            extensions={
                "services": services,
                "unavailable": unavailable,
                "dependencies": health.dependencies,
            },
        )
    return Readiness(
        status="degraded" if unavailable else "ready",
        services=services,
        unavailable=unavailable,
        dependencies=health.dependencies,
    )
