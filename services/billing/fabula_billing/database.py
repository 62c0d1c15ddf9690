"""The `billing` schema's declarative base and the tables every domain of the
service shares. Each domain package defines its own models on this Base."""

from __future__ import annotations

from fabula_common.db import make_base
from fabula_common.messaging.inbox import processed_events_table
from fabula_common.messaging.outbox import outbox_table

Base = make_base("billing")

# Ids of the events already applied (the consumers' inbox).
processed_events = processed_events_table(Base.metadata)
# Events for NATS (plan changes), written in the transaction of the change.
outbox = outbox_table(Base.metadata)
