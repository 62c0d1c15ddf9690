"""A NATS outage longer than the reservation TTL, over real gRPC, Postgres and
NATS: generation serves calls and records their usage, but its events wait in
its outbox; billing's expiry asks generation's record and keeps every hold, so
concurrent calls beyond the plan are refused however long the outage lasts,
and once the events arrive each call counts once.

A module of its own: every generation process of the test database relays
its outbox, so no other generation app may run while events are withheld.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.generation.v1 import generation_pb2, generation_pb2_grpc
from fabula_billing.app import create_app
from fabula_billing.settings import Settings
from fabula_common.testing import free_port, running_app
from fabula_generation.app import create_app as create_generation_app
from fabula_generation.settings import Settings as GenerationSettings

FREE_PLAN_GENERATIONS = 5
TTL_SECONDS = 2


def generation_request(user_id: str) -> generation_pb2.GenerateRequest:
    return generation_pb2.GenerateRequest(
        user_id=user_id,
        purpose=generation_pb2.PURPOSE_STORY_OPENING,
        subject=generation_pb2.SubjectRef(kind="story", id=str(uuid.uuid4())),
        story=generation_pb2.StoryInputs(genre="fantasy", opening_line="The fog came in."),
    )


@asynccontextmanager
async def generation_serving(
    port: int, billing_addr: str, **overrides
) -> AsyncIterator[generation_pb2_grpc.GenerationServiceStub]:
    settings = GenerationSettings(
        grpc_port=port, provider="offline", billing_addr=billing_addr, **overrides
    )
    async with (
        running_app(create_generation_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield generation_pb2_grpc.GenerationServiceStub(channel)


async def used_and_reserved(billing: billing_pb2_grpc.BillingServiceStub, user_id: str):
    usage = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    return usage.generations_used, usage.generations_reserved


async def test_an_outage_longer_than_the_ttl_never_lets_a_user_exceed_the_plan(
    test_database, test_stream
):
    generation_port = free_port()
    settings = Settings(
        grpc_port=free_port(),
        reservation_ttl_seconds=TTL_SECONDS,
        # The TTL must outlive a model call (a settings rule).
        generation_deadline_seconds=1,
        reservation_sweep_seconds=0.2,
        generation_addr=f"127.0.0.1:{generation_port}",
    )
    user_id = str(uuid.uuid4())
    async with (
        running_app(create_app(settings)) as billing_addr,
        grpc.aio.insecure_channel(billing_addr) as channel,
    ):
        billing = billing_pb2_grpc.BillingServiceStub(channel)
        # NATS unreachable for generation: its usage events stay in its outbox.
        async with generation_serving(
            generation_port, billing_addr, nats_url=f"nats://127.0.0.1:{free_port()}"
        ) as generation:
            for _ in range(FREE_PLAN_GENERATIONS):
                await generation.Generate(generation_request(user_id))
            assert await used_and_reserved(billing, user_id) == (0, FREE_PLAN_GENERATIONS)

            # The TTL passes twice over, with the expiry sweeping all along.
            await asyncio.sleep(2 * TTL_SECONDS + 1)
            attempts = [
                *(generation.Generate(generation_request(user_id)) for _ in range(6)),
                *(
                    billing.ReserveGeneration(
                        billing_pb2.ReserveGenerationRequest(
                            user_id=user_id, reservation_id=str(uuid.uuid4())
                        )
                    )
                    for _ in range(6)
                ),
            ]
            results = await asyncio.gather(*attempts, return_exceptions=True)

            for result in results:
                assert isinstance(result, grpc.aio.AioRpcError), result
                assert result.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, result
            assert await used_and_reserved(billing, user_id) == (0, FREE_PLAN_GENERATIONS)

        # NATS is back (a generation process that reaches it drains the outbox):
        # each call counts once, and the plan is full.
        async with generation_serving(generation_port, billing_addr):
            async with asyncio.timeout(15):
                while await used_and_reserved(billing, user_id) != (FREE_PLAN_GENERATIONS, 0):
                    await asyncio.sleep(0.1)
            try:
                await billing.ReserveGeneration(
                    billing_pb2.ReserveGenerationRequest(user_id=user_id)
                )
            except grpc.aio.AioRpcError as refused:
                assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            else:
                raise AssertionError("a reservation beyond the plan was granted")
