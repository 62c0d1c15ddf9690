"""Prometheus metrics of the REST API, served at /metrics on a listener of
their own (GATEWAY_METRICS_HOST:GATEWAY_METRICS_PORT), apart from the public
port: the scraper reaches it, clients of the API do not."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Histogram, start_http_server

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


def serve_metrics(host: str, port: int) -> WSGIServer:
    """Start the metrics listener (a thread); `shutdown()` stops it."""
    server, _thread = start_http_server(port, addr=host)
    return server
