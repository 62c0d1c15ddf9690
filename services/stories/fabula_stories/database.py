"""The `stories` schema's declarative base and the tables every domain of the
service shares. Each domain package defines its own models on this Base."""

from __future__ import annotations

from fabula_common.db import make_base
from fabula_common.messaging.outbox import outbox_table

Base = make_base("stories")

# Events for NATS (GenerationDelivered, GenerationDiscarded), written in the
# transaction of the change they report.
outbox = outbox_table(Base.metadata)
