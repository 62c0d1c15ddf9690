"""The gateway's gRPC channels and stubs: one channel per backend service."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from fabula.billing.v1 import billing_pb2_grpc
from fabula.stories.v1 import stories_pb2_grpc
from fabula.users.v1 import users_pb2_grpc
from fabula_common.grpc_client import open_channel
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fabula_gateway.settings import GatewaySettings

_HEALTH_STATUS_NAMES = {
    health_pb2.HealthCheckResponse.SERVING: "serving",
    health_pb2.HealthCheckResponse.NOT_SERVING: "not_serving",
    health_pb2.HealthCheckResponse.SERVICE_UNKNOWN: "unknown",
    health_pb2.HealthCheckResponse.UNKNOWN: "unknown",
}
SERVING = "serving"


@dataclass
class ServiceClients:
    """Stubs over long-lived channels. Channels connect lazily and reconnect
    on their own, so the gateway starts (and answers 503) with services down."""

    channels: dict[str, grpc.aio.Channel]
    users: users_pb2_grpc.UsersServiceStub
    stories: stories_pb2_grpc.StoriesServiceStub
    billing: billing_pb2_grpc.BillingServiceStub
    # Deadline of calls that run a model (create, continue, end).
    generation_timeout: float

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
            generation_timeout=settings.generation_deadline_seconds,
        )

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))

    async def health(self, timeout: float) -> dict[str, str]:
        """Each service's answer to grpc.health.v1 Check(""), asked in parallel:
        `serving`, `not_serving`, `unknown` or `unreachable`."""

        async def check(channel: grpc.aio.Channel) -> str:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=timeout
                )
            except grpc.aio.AioRpcError:
                return "unreachable"
            return _HEALTH_STATUS_NAMES.get(reply.status, "unknown")

        names = list(self.channels)
        statuses = await asyncio.gather(*(check(self.channels[name]) for name in names))
        return dict(zip(names, statuses, strict=True))
