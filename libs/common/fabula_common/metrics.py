"""Prometheus metrics shared by every process (one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

GRPC_HANDLED = Counter(
    "fabula_grpc_server_handled_total",
    "gRPC calls handled, by method and status code.",
    ["service", "method", "code"],
)
GRPC_LATENCY = Histogram(
    "fabula_grpc_server_handling_seconds",
    "Time to answer a gRPC call (to the end of the stream for streaming calls).",
    ["service", "method"],
)
OUTBOX_BACKLOG = Gauge(
    "fabula_outbox_backlog",
    "Events written to the outbox and not yet published to NATS.",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "fabula_outbox_published_total", "Events published from the outbox.", ["service", "subject"]
)
CONSUMER_PENDING = Gauge(
    "fabula_consumer_pending",
    "Messages in the stream not yet delivered to a durable consumer (consumer lag).",
    ["service", "consumer"],
)
CONSUMER_HANDLED = Counter(
    "fabula_consumer_handled_total",
    "Events taken from NATS, by result (handled, duplicate, failed, dead_lettered, poison).",
    ["service", "consumer", "result"],
)
OUTBOX_PARKED = Counter(
    "fabula_outbox_parked_total",
    "Outbox rows set aside after OUTBOX_MAX_ATTEMPTS failed publishes (they wait for an operator).",
    ["service", "subject"],
)
CONSUMER_DEAD_LETTERED = Counter(
    "fabula_consumer_dead_lettered_total",
    "Messages a consumer gave up on and moved to its dead-letter subject.",
    ["service", "consumer"],
)
