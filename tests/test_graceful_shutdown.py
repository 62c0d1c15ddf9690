"""SIGTERM on a real service process: it reports NOT_SERVING, finishes the call
in flight, refuses new ones, flushes its outbox relay, then exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import grpc
import nats
import nats.js.errors
import pytest
from fabula.generation.v1 import events_pb2, generation_pb2, generation_pb2_grpc
from fabula_billing.app import create_app as create_billing_app
from fabula_billing.settings import Settings as BillingSettings
from fabula_common.testing import free_port, running_app, wait_serving
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _request() -> generation_pb2.GenerateRequest:
    return generation_pb2.GenerateRequest(
        user_id=str(uuid.uuid4()),
        purpose=generation_pb2.PURPOSE_STORY_CONTINUATION,
        subject=generation_pb2.SubjectRef(kind="story", id=str(uuid.uuid4())),
        story=generation_pb2.StoryInputs(genre="fantasy", title="The Long Road", characters=["Ilsa"]),
    )


@pytest.fixture
async def billing_addr(test_database, test_stream):
    """The billing service the generation process reserves quota with."""
    async with running_app(create_billing_app(BillingSettings(grpc_port=free_port()))) as address:
        yield address


async def test_sigterm_drains_in_flight_calls_and_flushes_the_outbox(
    test_database, test_stream, nats_url, tmp_path, billing_addr
):
    port = free_port()
    env = {
        **os.environ,
        "BILLING_ADDR": billing_addr,
        "GENERATION_GRPC_PORT": str(port),
        "GENERATION_OFFLINE_TOKEN_DELAY_MS": "20",
        "SHUTDOWN_DRAIN_SECONDS": "1",
        "SHUTDOWN_GRACE_SECONDS": "15",
        # Published only by the final flush: the relay's own poll is far away.
        "OUTBOX_POLL_SECONDS": "600",
    }
    env.pop("MISTRAL_API_KEY", None)
    log_path = tmp_path / "generation.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "fabula_generation"], env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT
    )
    address = f"127.0.0.1:{port}"
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    subject = f"{os.environ['NATS_SUBJECT_PREFIX']}.generation.usage_recorded.v1"
    try:
        await wait_serving(address, timeout=20)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = generation_pb2_grpc.GenerationServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            call = stub.GenerateStream(_request(), timeout=60)
            first = await call.read()
            assert first.WhichOneof("event") == "token"

            process.send_signal(signal.SIGTERM)
            # During the drain period the process still answers, as NOT_SERVING.
            await asyncio.sleep(0.3)
            status = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING

            # The call in flight runs to its end.
            events = [first]
            while (event := await call.read()) is not grpc.aio.EOF:
                events.append(event)
            done = events[-1]
            assert done.WhichOneof("event") == "done"
            assert done.done.usage.completion_tokens > 0

            # The drain is over by now: new calls are refused.
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Generate(_request(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        assert await asyncio.to_thread(process.wait, 30) == 0
        assert "did not stop cleanly" not in log_path.read_text()

        # The final flush published the call's usage event.
        state = (await js.stream_info(test_stream)).state
        published = []
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                message = await js.get_msg(test_stream, seq)
            except nats.js.errors.NotFoundError:
                continue  # deleted since (the stream is shared with other tests)
            if message.subject == subject:
                published.append(events_pb2.UsageRecorded.FromString(message.data))
        assert done.done.generation_id in {e.generation_id for e in published}
    finally:
        if process.poll() is None:
            process.kill()
        await nc.close()
        print(log_path.read_text()[-6000:])  # shown by pytest when the test fails
