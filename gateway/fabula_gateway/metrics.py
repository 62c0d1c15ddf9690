"""Prometheus metrics of the REST API, served at /metrics for the scraper."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

# Labelled by route template, never by raw path: ids and scanners' paths
# would make the series unbounded.
UNMATCHED_ROUTE = "unmatched"

HTTP_REQUESTS = Counter(
    "fabula_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "fabula_http_request_duration_seconds",
    "Time to answer an HTTP request (to the end of the stream for streamed answers).",
    ["method", "route"],
    # Up to the generation deadline: continuing a story streams for a while.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


def observe(method: str, route: str | None, status: int, seconds: float) -> None:
    route = route or UNMATCHED_ROUTE
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
