"""With tracing on, a request continues the caller's trace and the gateway's
gRPC calls are its children."""

from __future__ import annotations

import pytest
from fabula_common.tracing import configure_tracing, shutdown_tracing
from fabula_gateway.app import create_app
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def exporter():
    exporter = InMemorySpanExporter()
    configure_tracing("gateway", exporter=exporter)
    yield exporter
    shutdown_tracing()


async def test_a_request_continues_the_callers_trace_into_grpc(
    exporter, backends, make_settings, serve, auth
):
    addresses = {f"{name}_addr": backends.address for name in ("users", "stories", "billing")}
    # Tracing is configured before the app (and its channels) exist, as in __main__.
    async with serve(create_app(make_settings(**addresses))) as client:
        response = await client.get(
            "/v1/usage",
            headers={**auth, "traceparent": f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"},
        )
        assert response.status_code == 200
        assert (await client.get("/healthz")).status_code == 200

    spans = exporter.get_finished_spans()
    # Probes are not traced: the only server span of the gateway is the API request.
    # (The fake's own server span, if its server is instrumented, is not ours.)
    [request] = [s for s in spans if s.kind is SpanKind.SERVER and s.name.startswith("GET ")]
    # Users' Authenticate (is the account still active?), then billing's GetUsage.
    authenticate, call = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert authenticate.name == "/fabula.users.v1.UsersService/Authenticate"
    assert authenticate.parent.span_id == request.context.span_id
    assert request.name == "GET /v1/usage"  # the route template, so spans group by route
    assert request.resource.attributes["service.name"] == "gateway"
    assert f"{request.context.trace_id:032x}" == CALLER_TRACE_ID
    assert f"{request.parent.span_id:016x}" == CALLER_SPAN_ID
    assert call.name.startswith("/fabula.billing.v1.BillingService/")
    assert call.parent.span_id == request.context.span_id
    assert call.status.status_code is StatusCode.UNSET  # not an error
    # The trace reached the service in the call's metadata.
    traceparent = backends.only("GetUsage").metadata["traceparent"]
    assert traceparent.split("-")[1] == CALLER_TRACE_ID
