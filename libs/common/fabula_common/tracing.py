"""Optional OpenTelemetry tracing, switched on by the standard OTEL_* variables.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
is set or `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`).
When off, nothing of the OpenTelemetry SDK is imported and every helper here
is a no-op, so a process pays nothing for tracing it does not use.

When on, `configure_tracing()` installs a tracer provider and instruments
grpc.aio servers and channels. It must run before the process creates any
server or channel: the instrumentation wraps `grpc.aio.server` and
`grpc.aio.insecure_channel`. The trace context also travels with events: the
outbox stores a W3C `traceparent` header next to the others, and a consumer
processes each event in a span whose parent is the span that enqueued it.

Everything else is the SDK's standard configuration: OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES (the service name defaults to the process's: users,
stories, ...), OTEL_TRACES_SAMPLER(_ARG), OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL
(`grpc`, the default, or `http/protobuf`), headers, timeouts and certificates.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fabula_common.messaging.headers import MSG_ID_HEADER

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

_SUPPORTED_EXPORTERS = ("otlp", "console")
_SUPPORTED_OTLP_PROTOCOLS = ("grpc", "http/protobuf")

# Set while tracing is on in this process.
_provider: TracerProvider | None = None
_tracer: Tracer | None = None


def tracing_exporters(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The exporters the environment asks for; empty when tracing is off.
    Raises ValueError for an exporter this build does not have."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [
        n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()
    ]
    if names == ["none"]:
        return []
    if names:
        unknown = sorted(set(names) - set(_SUPPORTED_EXPORTERS))
        if unknown:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER: unsupported {', '.join(unknown)} "
                f"(use {' or '.join(_SUPPORTED_EXPORTERS)} or none)"
            )
        return names
    if environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    ):
        return ["otlp"]
    return []


def configure_tracing(
    service_name: str, *, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Switch tracing on for this process if configured; return the provider, or None when off.

    `exporter` overrides the environment: every span goes to it synchronously
    (tests use an in-memory exporter). Calling this again while tracing is on
    returns the provider already installed.
    """
    global _provider, _tracer
    if _provider is not None:
        return _provider
    try:
        exporter_names = [] if exporter is not None else tracing_exporters()
        if exporter is None and not exporter_names:
            return None
        exporters = [_make_exporter(name) for name in exporter_names]
    except ValueError as exc:
        raise SystemExit(
            f"{service_name}: refusing to start, invalid configuration: {exc}"
        ) from None

    from opentelemetry import trace
    from opentelemetry.instrumentation.grpc import (
        GrpcAioInstrumentorClient,
        GrpcAioInstrumentorServer,
    )
    from opentelemetry.instrumentation.grpc.filters import (
        any_of,
        health_check,
        negate,
        service_prefix,
    )
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over the process's name.
    resource = Resource.create({SERVICE_NAME: service_name}).merge(OTELResourceDetector().detect())
    # The sampler comes from OTEL_TRACES_SAMPLER (parent-based, always on by default).
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    for configured in exporters:
        provider.add_span_processor(BatchSpanProcessor(configured))

    # The global provider can be set once per process; later providers (tests)
    # still work because everything below is handed its provider explicitly.
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    # Health probes (every few seconds) and reflection would drown the real calls.
    traced_calls = negate(any_of(health_check(), service_prefix("grpc.reflection")))
    GrpcAioInstrumentorServer(filter_=traced_calls).instrument(tracer_provider=provider)
    GrpcAioInstrumentorClient(filter_=traced_calls).instrument(tracer_provider=provider)

    _provider = provider
    _tracer = provider.get_tracer("fabula_common")
    log.info(
        "tracing on: service %s, exporting to %s",
        resource.attributes.get(SERVICE_NAME),
        ", ".join(exporter_names) or type(exporter).__name__,
    )
    return provider


def _make_exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    # Both exporters read their endpoint, headers, timeout and TLS settings
    # from the standard OTEL_EXPORTER_OTLP_* variables.
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported {protocol!r} "
        f"(use {' or '.join(_SUPPORTED_OTLP_PROTOCOLS)})"
    )


def tracing_provider() -> TracerProvider | None:
    """The provider installed by `configure_tracing`, or None when tracing is off."""
    return _provider


def flush_tracing(timeout_seconds: float = 5.0) -> None:
    """Export the spans still buffered, now. For a process that may end
    without running its exit hooks (uvicorn re-raises SIGTERM once it has
    drained), where the SDK's own flush at exit would not happen."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=int(timeout_seconds * 1000))


def shutdown_tracing() -> None:
    """Export what is buffered, stop tracing and undo the gRPC instrumentation.
    (The SDK also flushes at interpreter exit; this is for an orderly stop.)"""
    global _provider, _tracer
    if _provider is None:
        return
    from opentelemetry.instrumentation.grpc import (
        GrpcAioInstrumentorClient,
        GrpcAioInstrumentorServer,
    )

    GrpcAioInstrumentorServer().uninstrument()
    GrpcAioInstrumentorClient().uninstrument()
    provider, _provider, _tracer = _provider, None, None
    provider.shutdown()


def inject_trace_context(headers: MutableMapping[str, str]) -> None:
    """Add the current span's W3C trace context (`traceparent`, and `tracestate`
    when there is one) to message headers. A no-op when tracing is off."""
    if _provider is None:
        return
    from opentelemetry import propagate

    propagate.inject(headers)


@contextmanager
def consumer_span(consumer: str, subject: str, headers: Mapping[str, str] | None) -> Iterator[Any]:
    """Process one event in a CONSUMER span, child of the span that produced it
    (from the message's trace context headers). Yields None when tracing is off."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    parent = propagate.extract(dict(headers or {}))
    attributes = {
        "messaging.system": "nats",
        "messaging.operation.type": "process",
        "messaging.destination.name": subject,
        "messaging.consumer.group.name": consumer,
    }
    message_id = (headers or {}).get(MSG_ID_HEADER)
    if message_id:
        attributes["messaging.message.id"] = message_id
    with _tracer.start_as_current_span(
        f"process {subject}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span
