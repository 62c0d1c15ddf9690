"""Prometheus metrics of billing."""

from __future__ import annotations

from prometheus_client import Counter

RESERVATIONS_EXPIRED = Counter(
    "fabula_billing_reservations_expired_total",
    "Reservations given back by the safety-net expiry: their producers never sent "
    "the events that settle them (should stay at zero).",
)
