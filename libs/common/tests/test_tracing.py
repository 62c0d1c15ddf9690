"""Tracing: off by default at no cost; when on, one trace follows a request
across gRPC hops and across an event's outbox → NATS → consumer journey."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import grpc
import pytest
from fabula.users.v1 import events_pb2
from fabula_common.errors import NotFound
from fabula_common.grpc_client import open_channel
from fabula_common.grpc_server import GrpcApp
from fabula_common.messaging.bus import EventBus, subject_for
from fabula_common.messaging.consumers import EventConsumer
from fabula_common.messaging.outbox import OutboxRelay, enqueue
from fabula_common.settings import CommonSettings, ServiceSettings
from fabula_common.testing import free_port, running_app
from fabula_common.tracing import configure_tracing, shutdown_tracing, tracing_exporters
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic_settings import SettingsConfigDict
from sqlalchemy import select

ECHO = "fabula.test.v1.EchoService"


class ExampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TRACING_TEST_")
    database_url: str = "postgresql://example:example@127.0.0.1:5432/fabula"
    grpc_port: int = 0


@pytest.fixture
def exporter():
    """Tracing on for one test, every span collected in memory."""
    exporter = InMemorySpanExporter()
    configure_tracing("tracing-test", exporter=exporter)
    yield exporter
    shutdown_tracing()


def _without_otel_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}


def _run_python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, []),
    ],
)
def test_the_standard_variables_switch_tracing_on(environ, expected):
    assert tracing_exporters(environ) == expected


def test_an_unknown_exporter_refuses_to_start(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(SystemExit, match="users: refusing to start.*OTEL_TRACES_EXPORTER.*jaeger"):
        configure_tracing("users")


def test_tracing_off_installs_nothing_and_loads_no_sdk():
    report = _run_python(
        "import json, sys, grpc\n"
        "from opentelemetry import trace\n"
        "import fabula_common.messaging.consumers, fabula_common.grpc_server, fabula_common.messaging.outbox\n"
        "from fabula_common.tracing import configure_tracing\n"
        "server, channel = grpc.aio.server, grpc.aio.insecure_channel\n"
        "print(json.dumps({\n"
        "  'provider': configure_tracing('users') is not None,\n"
        "  'global_provider': type(trace.get_tracer_provider()).__name__,\n"
        "  'grpc_patched': grpc.aio.server is not server or grpc.aio.insecure_channel is not channel,\n"
        "  'sdk_loaded': sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')),\n"
        "}))\n",
        _without_otel_env(),
    )
    assert json.loads(report) == {
        "provider": False,
        "global_provider": "ProxyTracerProvider",
        "grpc_patched": False,
        "sdk_loaded": [],
    }


def test_the_environment_switches_tracing_on_with_the_process_name():
    output = _run_python(
        "from opentelemetry import trace\n"
        "from fabula_common.tracing import configure_tracing\n"
        "configure_tracing('billing')\n"
        "with trace.get_tracer('check').start_as_current_span('work'):\n"
        "    pass\n",
        {**_without_otel_env(), "OTEL_TRACES_EXPORTER": "console"},
    )
    # The console exporter prints each span as JSON; spans are flushed at exit.
    span = json.loads(output)
    assert span["name"] == "work"
    assert span["resource"]["attributes"]["service.name"] == "billing"


def test_otel_service_name_overrides_the_process_name(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-canary")
    provider = configure_tracing("billing", exporter=InMemorySpanExporter())
    try:
        assert provider.resource.attributes["service.name"] == "billing-canary"
    finally:
        shutdown_tracing()


# --- gRPC: one trace across hops ---------------------------------------------


def _echo_app(relay_channel: dict[str, grpc.aio.Channel]) -> GrpcApp:
    """An app with `Echo` (NOT_FOUND for b"missing", INTERNAL for b"crash") and `Relay`, which calls
    Echo through an ordinary outbound channel, as stories calls billing."""

    async def echo(request: bytes, context) -> bytes:
        if request == b"missing":
            raise NotFound("no such thing")
        if request == b"crash":
            raise RuntimeError("a bug")
        return request

    async def relay(request: bytes, context) -> bytes:
        return await relay_channel["echo"].unary_unary(f"/{ECHO}/Echo")(request)

    handler = grpc.method_handlers_generic_handler(
        ECHO,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Relay": grpc.unary_unary_rpc_method_handler(relay),
        },
    )
    app = GrpcApp("tracing-test", ExampleSettings(grpc_port=free_port()))
    app.add_servicer(lambda h, server: server.add_generic_rpc_handlers((h,)), handler, ECHO)
    return app


def _by_name_and_kind(spans: tuple[ReadableSpan, ...]) -> dict[tuple[str, SpanKind], ReadableSpan]:
    return {(span.name, span.kind): span for span in spans}


async def test_a_call_across_two_hops_is_one_trace(exporter):
    channels: dict[str, grpc.aio.Channel] = {}
    async with running_app(_echo_app(channels)) as address:
        channels["echo"] = open_channel(address, default_timeout=5)
        async with open_channel(address, default_timeout=5) as client:
            assert await client.unary_unary(f"/{ECHO}/Relay")(b"hello") == b"hello"
        await channels["echo"].close()

    spans = _by_name_and_kind(exporter.get_finished_spans())
    relay_client = spans[(f"/{ECHO}/Relay", SpanKind.CLIENT)]
    relay_server = spans[(f"/{ECHO}/Relay", SpanKind.SERVER)]
    echo_client = spans[(f"/{ECHO}/Echo", SpanKind.CLIENT)]
    echo_server = spans[(f"/{ECHO}/Echo", SpanKind.SERVER)]
    # The chain a trace viewer shows: caller → Relay → its outbound call → Echo.
    assert relay_client.parent is None
    assert relay_server.parent.span_id == relay_client.context.span_id
    assert echo_client.parent.span_id == relay_server.context.span_id
    assert echo_server.parent.span_id == echo_client.context.span_id
    assert {s.context.trace_id for s in spans.values()} == {relay_client.context.trace_id}
    assert echo_server.resource.attributes["service.name"] == "tracing-test"
    # Health checks (probes every few seconds) are not traced.
    assert not [s for s in spans.values() if "grpc.health" in s.name]


@pytest.mark.parametrize(
    ("request_body", "code", "server_status"),
    [
        # The caller's mistake: a failed call for the client, not a server fault.
        (b"missing", grpc.StatusCode.NOT_FOUND, StatusCode.UNSET),
        # A bug in the service: failed on both sides.
        (b"crash", grpc.StatusCode.INTERNAL, StatusCode.ERROR),
    ],
)
async def test_failed_calls_are_marked_on_their_spans(exporter, request_body, code, server_status):
    async with running_app(_echo_app({})) as address, open_channel(address, 5) as client:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await client.unary_unary(f"/{ECHO}/Echo")(request_body)
    assert failure.value.code() is code

    spans = _by_name_and_kind(exporter.get_finished_spans())
    client_span, server_span = (
        spans[(f"/{ECHO}/Echo", SpanKind.CLIENT)],
        spans[(f"/{ECHO}/Echo", SpanKind.SERVER)],
    )
    assert client_span.status.status_code is StatusCode.ERROR
    assert server_span.status.status_code is server_status
    for span in (client_span, server_span):
        assert span.attributes["rpc.grpc.status_code"] == code.value[0]


# --- Events: outbox → NATS → consumer ----------------------------------------


async def test_an_event_carries_the_trace_to_its_consumer(
    exporter, event_tables, test_stream, service_settings
):
    db, outbox, processed = event_tables
    settings = CommonSettings()
    subject = subject_for(settings, "tracing", f"checked_{uuid.uuid4().hex[:8]}")
    bus = EventBus(settings, "tracing-test")
    tracer = configure_tracing("tracing-test").get_tracer("test")

    with tracer.start_as_current_span("register") as producer:
        event = events_pb2.UserRegistered(event_id=str(uuid.uuid4()), user_id="u-1")
        async with db.session_scope() as session:
            await enqueue(session, outbox, subject, event)
    async with db.session_scope() as session:
        headers = await session.scalar(select(outbox.c.headers))
    produced = producer.get_span_context()
    trace_id, span_id = produced.trace_id, produced.span_id
    assert headers["traceparent"] == f"00-{trace_id:032x}-{span_id:016x}-{produced.trace_flags:02x}"

    handled = asyncio.Event()

    async def handler(session, message: events_pb2.UserRegistered) -> None:
        handled.set()

    consumer = EventConsumer(
        db=db,
        bus=bus,
        processed=processed,
        service="tracing-test",
        durable=f"tracing-test-{uuid.uuid4().hex[:8]}",
        subject=subject,
        message_type=events_pb2.UserRegistered,
        handler=handler,
    )
    try:
        assert (
            await OutboxRelay(db, outbox, bus, "tracing-test", service_settings).publish_pending()
            == 1
        )
        consuming = asyncio.create_task(consumer.run())
        await asyncio.wait_for(handled.wait(), timeout=10)
        await consumer.stop()
        await asyncio.wait_for(consuming, timeout=5)
    finally:
        await bus.close()

    [processing] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert processing.name == f"process {subject}"
    assert processing.context.trace_id == trace_id
    assert processing.parent.span_id == span_id
    assert processing.attributes["messaging.message.id"] == event.event_id
