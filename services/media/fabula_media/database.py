"""The `media` schema's declarative base and the tables every domain of the
service shares. Each domain package defines its own models on this Base."""

from __future__ import annotations

from fabula_common.db import make_base
from fabula_common.messaging.inbox import processed_events_table
from fabula_common.messaging.outbox import outbox_table

Base = make_base("media")

# Events for NATS, written in the transaction of the change they report.
outbox = outbox_table(Base.metadata)

# Ids of the events already applied (PhotoUploaded, UserDeleted).
processed_events = processed_events_table(Base.metadata)
