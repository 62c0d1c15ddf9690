"""Transactional outbox.

A producer calls `enqueue()` with the session of the transaction that changes
state, so the event is stored if and only if the change is. `OutboxRelay`
publishes stored events to JetStream with `Nats-Msg-Id` = event id (JetStream
drops a duplicate re-send) and marks them published. While NATS is down the
rows wait; nothing is lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections import defaultdict

from google.protobuf.message import Message
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Uuid,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_common.context import current_request_id
from fabula_common.db import Database, utcnow
from fabula_common.events import EventBus
from fabula_common.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED
from fabula_common.tracing import inject_trace_context

log = logging.getLogger(__name__)

EVENT_TYPE_HEADER = "Fabula-Event-Type"
MSG_ID_HEADER = "Nats-Msg-Id"
REQUEST_ID_HEADER = "X-Request-ID"

# Set after a commit that wrote to an outbox, so the relay need not wait for its poll.
_wakeups: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)


def outbox_table(metadata: MetaData) -> Table:
    table = Table(
        "outbox",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("subject", String(255), nullable=False),
        Column("event_type", String(255), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, server_default="0"),
    )
    Index(
        "ix_outbox_pending",
        table.c.created_at,
        postgresql_where=table.c.published_at.is_(None),
    )
    return table


async def enqueue(session: AsyncSession, table: Table, subject: str, message: Message) -> uuid.UUID:
    """Store `message` for publishing once the surrounding transaction commits.
    The message's `event_id` field must already hold its unique id."""
    event_id = uuid.UUID(getattr(message, "event_id"))
    headers = {MSG_ID_HEADER: str(event_id), EVENT_TYPE_HEADER: message.DESCRIPTOR.full_name}
    request_id = current_request_id()
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    inject_trace_context(headers)
    await session.execute(
        table.insert().values(
            id=event_id,
            subject=subject,
            event_type=message.DESCRIPTOR.full_name,
            payload=message.SerializeToString(),
            headers=headers,
        )
    )
    wakeup = _wakeups[table.fullname]
    event.listen(session.sync_session, "after_commit", lambda _s: wakeup.set(), once=True)
    return event_id


class OutboxRelay:
    """Background worker publishing a service's outbox to JetStream."""

    batch_size = 100
    # Published rows are kept a while for inspection, then deleted.
    retention = dt.timedelta(days=7)
    purge_every_seconds = 3600.0

    def __init__(self, db: Database, table: Table, bus: EventBus, service: str, poll_seconds: float) -> None:
        self.db = db
        self.table = table
        self.bus = bus
        self.service = service
        self.poll_seconds = poll_seconds
        self._wakeup = _wakeups[table.fullname]
        self._stopped = asyncio.Event()
        self._last_purge = 0.0

    async def run(self) -> None:
        backoff = self.poll_seconds
        while not self._stopped.is_set():
            try:
                if time.monotonic() - self._last_purge > self.purge_every_seconds:
                    await self.purge_published()
            except Exception as exc:  # noqa: BLE001 - housekeeping must not hold up publishing
                log.warning("outbox relay: purge failed, will retry later: %s", exc)
            try:
                published = await self.publish_pending()
                backoff = self.poll_seconds
                if published == self.batch_size:
                    continue
            except Exception as exc:  # noqa: BLE001 - keep relaying whatever failed
                log.warning("outbox relay: publish failed, will retry: %s", exc)
                backoff = min(backoff * 2, 10.0)
            self._wakeup.clear()
            if self._stopped.is_set():  # stop() may have set the wakeup just cleared
                break
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=backoff)
            except TimeoutError:
                pass
        # Last pass, once no publish of ours holds a row lock: what the final
        # calls committed goes out before the process exits.
        try:
            while await self.publish_pending() == self.batch_size:
                pass
        except Exception as exc:  # noqa: BLE001 - rows stay for the next start
            log.warning("outbox relay: final flush failed, rows kept: %s", exc)

    async def publish_pending(self) -> int:
        """Publish one batch; return how many were published. Rows are locked
        with SKIP LOCKED so several replicas can relay side by side."""
        t = self.table
        async with self.db.session_scope() as session:
            backlog = await session.scalar(
                select(func.count()).select_from(t).where(t.c.published_at.is_(None))
            )
            OUTBOX_BACKLOG.labels(self.service).set(backlog or 0)
            if not backlog:
                return 0
            rows = (
                await session.execute(
                    select(t.c.id, t.c.subject, t.c.payload, t.c.headers)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.created_at)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            js = await self.bus.jetstream()
            published: list[uuid.UUID] = []
            error: Exception | None = None
            for row in rows:
                try:
                    await js.publish(
                        row.subject,
                        row.payload,
                        headers=row.headers,
                        timeout=self.bus.settings.nats_timeout_seconds,
                    )
                except Exception as exc:  # noqa: BLE001 - reported after marking the rest
                    error = exc
                    await session.execute(
                        update(t).where(t.c.id == row.id).values(attempts=t.c.attempts + 1)
                    )
                    break
                published.append(row.id)
                OUTBOX_PUBLISHED.labels(self.service, row.subject).inc()
            # Mark what did go out, even when a later publish failed.
            if published:
                await session.execute(
                    update(t).where(t.c.id.in_(published)).values(published_at=utcnow())
                )
            OUTBOX_BACKLOG.labels(self.service).set((backlog or 0) - len(published))
        if error is not None:
            raise error
        return len(published)

    async def purge_published(self) -> int:
        t = self.table
        self._last_purge = time.monotonic()  # a failing purge waits its turn too
        async with self.db.session_scope() as session:
            result = await session.execute(
                delete(t).where(t.c.published_at < utcnow() - self.retention)
            )
        return result.rowcount or 0

    async def stop(self) -> None:
        """Ask run() to make its last pass and return."""
        self._stopped.set()
        self._wakeup.set()
