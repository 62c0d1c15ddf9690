"""The gateway's gRPC channels and stubs: one channel per backend service."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from fabula.billing.v1 import billing_pb2_grpc
from fabula.generation.v1 import generation_pb2_grpc, jobs_pb2_grpc
from fabula.media.v1 import media_pb2_grpc
from fabula.stories.v1 import (
    conversations_pb2_grpc,
    pictures_pb2_grpc,
    projects_pb2_grpc,
    stories_pb2_grpc,
)
from fabula.users.v1 import users_pb2_grpc
from fabula_common.grpc_client import ContextChannel, open_channel
from fabula_common.health import NATS, POSTGRES, dependency_health_name
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fabula_gateway.settings import GatewaySettings

_HEALTH_STATUS_NAMES = {
    health_pb2.HealthCheckResponse.SERVING: "serving",
    health_pb2.HealthCheckResponse.NOT_SERVING: "not_serving",
    health_pb2.HealthCheckResponse.SERVICE_UNKNOWN: "unknown",
    health_pb2.HealthCheckResponse.UNKNOWN: "unknown",
}
SERVING = "serving"
# The dependencies a service may report in its health (fabula_common.health);
# one a service does not use is simply absent from its answer.
DEPENDENCIES = (POSTGRES, NATS)
_DEPENDENCY_STATUS_NAMES = {
    health_pb2.HealthCheckResponse.SERVING: "up",
    health_pb2.HealthCheckResponse.NOT_SERVING: "down",
}


@dataclass(frozen=True)
class BackendHealth:
    # Each service's own health: serving, not_serving, unknown or unreachable.
    services: dict[str, str]
    # Per service, each dependency it reports: up, down or unknown (empty
    # when the service could not be asked).
    dependencies: dict[str, dict[str, str]]


@dataclass
class ServiceClients:
    """Stubs over long-lived channels. Channels connect lazily and reconnect
    on their own, so the gateway starts (and answers 503) with services down."""

    channels: dict[str, ContextChannel]
    users: users_pb2_grpc.UsersServiceStub
    stories: stories_pb2_grpc.StoriesServiceStub
    billing: billing_pb2_grpc.BillingServiceStub
    generation: generation_pb2_grpc.GenerationServiceStub
    # Long-form work: generation's jobs, stories' projects and narratives.
    jobs: jobs_pb2_grpc.JobsServiceStub
    projects: projects_pb2_grpc.ProjectsServiceStub
    # Council conversations (stories' ConversationsService).
    conversations: conversations_pb2_grpc.ConversationsServiceStub
    # Drawing tutorials, drawings and picture stories (stories' pictures domain).
    tutorials: pictures_pb2_grpc.TutorialsServiceStub
    drawings: pictures_pb2_grpc.DrawingsServiceStub
    # Photos and their files (media's MediaService).
    media: media_pb2_grpc.MediaServiceStub
    # Deadline of calls that run a model (create, continue, end).
    generation_timeout: float
    # Deadline of a council message (ask, follow-up, resume): the council's
    # own, plus the time stories takes to store it.
    council_timeout: float
    # Deadline of a signed local-storage upload or download streamed through media.
    transfer_timeout: float

    @classmethod
    def open(cls, settings: GatewaySettings) -> ServiceClients:
        channels = {
            name: open_channel(address, settings.grpc_deadline_seconds)
            for name, address in settings.service_addresses.items()
        }
        return cls(
            channels=channels,
            users=users_pb2_grpc.UsersServiceStub(channels["users"]),
            stories=stories_pb2_grpc.StoriesServiceStub(channels["stories"]),
            billing=billing_pb2_grpc.BillingServiceStub(channels["billing"]),
            generation=generation_pb2_grpc.GenerationServiceStub(channels["generation"]),
            jobs=jobs_pb2_grpc.JobsServiceStub(channels["generation"]),
            projects=projects_pb2_grpc.ProjectsServiceStub(channels["stories"]),
            conversations=conversations_pb2_grpc.ConversationsServiceStub(channels["stories"]),
            tutorials=pictures_pb2_grpc.TutorialsServiceStub(channels["stories"]),
            drawings=pictures_pb2_grpc.DrawingsServiceStub(channels["stories"]),
            media=media_pb2_grpc.MediaServiceStub(channels["media"]),
            generation_timeout=settings.generation_deadline_seconds,
            council_timeout=settings.council_deadline_seconds + settings.grpc_deadline_seconds,
            transfer_timeout=settings.transfer_timeout_seconds,
        )

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))

    async def health(self, timeout: float) -> BackendHealth:
        """Each service's grpc.health.v1 answer for itself (`""`) and for each of
        its dependencies (`<service>/postgres`, ...), all asked in parallel,
        each within `timeout`."""

        async def check(service: str, dependency: str | None) -> str | None:
            """The service's status (`dependency` None) or that of one of its
            dependencies; None when it does not report that dependency."""
            name = "" if dependency is None else dependency_health_name(service, dependency)
            try:
                reply = await health_pb2_grpc.HealthStub(self.channels[service]).Check(
                    health_pb2.HealthCheckRequest(service=name), timeout=timeout
                )
            except grpc.aio.AioRpcError as err:
                if dependency is None:
                    return "unreachable"
                return None if err.code() is grpc.StatusCode.NOT_FOUND else "unknown"
            names = _HEALTH_STATUS_NAMES if dependency is None else _DEPENDENCY_STATUS_NAMES
            return names.get(reply.status, "unknown")

        asked = [
            (service, dependency)
            for service in self.channels
            for dependency in (None, *DEPENDENCIES)
        ]
        answers = await asyncio.gather(*(check(*question) for question in asked))
        services: dict[str, str] = {}
        dependencies: dict[str, dict[str, str]] = {service: {} for service in self.channels}
        for (service, dependency), status in zip(asked, answers, strict=True):
            if dependency is None:
                services[service] = status or "unknown"
            elif status is not None:
                dependencies[service][dependency] = status
        # Nothing is known of the dependencies of a service that did not answer.
        for service, status in services.items():
            if status == "unreachable":
                dependencies[service] = {}
        return BackendHealth(services, dependencies)
