"""The inbox of a consuming service: the ids of the events it has applied.

A consumer inserts an event's id in the transaction that applies the event;
a redelivered or re-published (replayed) event finds its id here and is
acknowledged without being applied again.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, String, Table, func


def processed_events_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("subject", String(255), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
