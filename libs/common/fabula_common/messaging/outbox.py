"""Transactional outbox.

A producer calls `enqueue()` with the session of the transaction that changes
state, so the event is stored if and only if the change is. `OutboxRelay`
publishes stored events to JetStream with `Nats-Msg-Id` = event id (JetStream
drops a duplicate re-send) and marks them published. While NATS is down the
rows wait; nothing is lost.

A row NATS refuses while connected (too large, no stream for its subject, a
timeout) is retried on its own schedule: `next_attempt_at` moves back
exponentially and `last_error` says why. After `OUTBOX_MAX_ATTEMPTS` the row
is parked (`parked_at`), logged and counted, and waits for an operator; the
rows behind it go out meanwhile. An outage of NATS itself costs no attempts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections import Counter, defaultdict

import nats.errors
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
    Text,
    Uuid,
    any_,
    bindparam,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_common.context import current_request_id
from fabula_common.db import Database, utcnow
from fabula_common.db_errors import log_background_failure
from fabula_common.errors import Unavailable
from fabula_common.messaging.bus import EventBus
from fabula_common.messaging.headers import EVENT_TYPE_HEADER, MSG_ID_HEADER, REQUEST_ID_HEADER
from fabula_common.metrics import OUTBOX_BACKLOG, OUTBOX_PARKED, OUTBOX_PUBLISHED
from fabula_common.settings import ServiceSettings
from fabula_common.tracing import inject_trace_context

log = logging.getLogger(__name__)

# Failures of the connection, not of a row: the row is not charged an attempt.
_CONNECTION_ERRORS = (
    Unavailable,
    ConnectionError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.UnexpectedEOF,
)

# A row whose publish was not attempted or not answered because the
# connection failed: it stays due and is charged no attempt.
_NOT_SENT = object()

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
        Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("last_error", Text),
        Column("parked_at", DateTime(timezone=True)),
    )
    # Exactly the relay's query: rows neither published nor parked, due first.
    Index(
        "ix_outbox_pending",
        table.c.next_attempt_at,
        postgresql_where=(table.c.published_at.is_(None) & table.c.parked_at.is_(None)),
    )
    return table


def _pending(table: Table):
    return table.c.published_at.is_(None) & table.c.parked_at.is_(None)


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

    batch_size = 500
    concurrent_passes = 2
    # Published rows are kept a while for inspection, then deleted.
    retention = dt.timedelta(days=7)
    purge_every_seconds = 3600.0
    # An error stored in last_error is cut to this length.
    error_length = 1000

    def __init__(self, db: Database, table: Table, bus: EventBus, service: str, settings: ServiceSettings) -> None:
        self.db = db
        self.table = table
        self.bus = bus
        self.service = service
        self.poll_seconds = settings.outbox_poll_seconds
        self.max_attempts = settings.outbox_max_attempts
        self.retry_base_seconds = settings.outbox_retry_base_seconds
        self.retry_max_seconds = settings.outbox_retry_max_seconds
        self._wakeup = _wakeups[table.fullname]
        # Rows that waited out an outage go as soon as NATS is back.
        bus.on_reconnected(self._wakeup.set)
        self._stopped = asyncio.Event()
        self._last_purge = 0.0

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait before attempt `attempts + 1`."""
        return min(self.retry_max_seconds, self.retry_base_seconds * 2 ** max(attempts - 1, 0))

    async def run(self) -> None:
        # Passes run side by side (SKIP LOCKED keeps their rows apart): while
        # one waits for JetStream's acknowledgements, another locks and sends
        # the rows after it, and a commit is not kept waiting by a pass.
        await asyncio.gather(*(self._relay() for _ in range(self.concurrent_passes)))
        # Last pass, once no publish of ours holds a row lock: what the final
        # calls committed goes out before the process exits.
        try:
            while await self.publish_pending() == self.batch_size:
                pass
        except Exception as exc:  # noqa: BLE001 - rows stay for the next start
            log.warning("outbox relay: final flush failed, rows kept: %s", exc)

    async def _relay(self) -> None:
        backoff = self.poll_seconds
        while not self._stopped.is_set():
            try:
                if time.monotonic() - self._last_purge > self.purge_every_seconds:
                    await self.purge_published()
            except Exception as exc:  # noqa: BLE001 - housekeeping must not hold up publishing
                log_background_failure(log, "outbox relay: purging published rows", exc)
            # Cleared before the pass, never after it: a commit that lands
            # while the pass runs sets it again and the wait below returns at
            # once, so no wake-up is lost to the poll.
            self._wakeup.clear()
            try:
                published = await self.publish_pending()
                backoff = self.poll_seconds
                if published == self.batch_size:
                    continue
            except Exception as exc:  # noqa: BLE001 - keep relaying whatever failed
                log.warning("outbox relay: publish failed, will retry: %s", exc)
                backoff = min(backoff * 2, 10.0)
            if self._stopped.is_set():
                break
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=backoff)
            except TimeoutError:
                pass

    async def publish_pending(self) -> int:
        """Publish one batch of due rows; return how many were published (a
        full batch means more may be due). Rows are locked with SKIP LOCKED so
        several replicas can relay side by side. Raises when the connection to
        NATS fails; a row's own failure is recorded on the row instead.

        The batch is published pipelined: every message is sent, then the
        acknowledgements are awaited together (one round trip to JetStream
        per batch, not per row)."""
        t = self.table
        async with self.db.session_scope() as session:
            rows = (
                await session.execute(
                    select(t.c.id, t.c.subject, t.c.payload, t.c.headers, t.c.attempts)
                    .where(_pending(t), t.c.next_attempt_at <= func.now())
                    .order_by(t.c.next_attempt_at)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                await self._measure_backlog(session)
                return 0
            js = await self.bus.jetstream()
            outcomes, connection_error = await self._publish_all(js, rows)
            published: list[uuid.UUID] = []
            per_subject: Counter[str] = Counter()
            for row, outcome in zip(rows, outcomes, strict=True):
                if outcome is None:
                    published.append(row.id)
                    per_subject[row.subject] += 1
                elif outcome is not _NOT_SENT:
                    await self._record_failure(session, row, outcome)
            for subject, count in per_subject.items():
                OUTBOX_PUBLISHED.labels(self.service, subject).inc(count)
            # Mark what did go out, even when others failed.
            if published:
                await session.execute(
                    update(t)
                    .where(t.c.id == any_(bindparam("published", type_=ARRAY(Uuid))))
                    .values(published_at=utcnow()),
                    {"published": published},
                )
            if len(rows) < self.batch_size:
                # Caught up: the count is of the few rows left, so it is cheap.
                await self._measure_backlog(session)
        if connection_error is not None:
            raise connection_error
        # A full batch, failures included, means more rows may be due now.
        return len(published) if len(rows) < self.batch_size else self.batch_size

    async def _measure_backlog(self, session: AsyncSession) -> None:
        t = self.table
        backlog = await session.scalar(select(func.count()).select_from(t).where(_pending(t)))
        OUTBOX_BACKLOG.labels(self.service).set(backlog or 0)

    async def _publish_all(self, js, rows) -> tuple[list, Exception | None]:
        """Send every row, then await the acknowledgements together, within
        one `nats_timeout_seconds`. Per row: None (published), the exception
        JetStream answered (the row's own failure), or `_NOT_SENT` (not sent
        or not acknowledged because the connection failed: no attempt is
        charged). Also the connection's error, if any."""
        timeout = self.bus.settings.nats_timeout_seconds
        # Per row sent: its acknowledgement to come, or what refused it at once
        # (e.g. a payload over the server's limit).
        sent: list[asyncio.Future | Exception] = []
        connection_error: Exception | None = None
        # Sent without yielding to the loop between rows, so the client's
        # flusher writes the batch to the socket at once: a per-row stall
        # bound (`wait_stall`) costs each row a task and a timer (asyncio's
        # wait_for), and the flusher then ran, and wrote, once per row (about
        # 60 % of the relay's CPU). Nor may a row wait for a slot in the
        # client's window of unacknowledged publishes: nats-py turns a
        # cancelled wait into a row error, so no bound could stop it. The
        # window (bus.PUBLISH_WINDOW) outnumbers what the passes send at once
        # (concurrent_passes x batch_size), and what goes unanswered gives its
        # slot back below; should JetStream leave a whole window unanswered
        # all the same, the pass stops there and the rest go again next pass.
        window = self.bus.publish_window
        for row in rows:
            if js.publish_async_pending() >= window:
                log.warning("outbox relay: JetStream's window of publishes is full; retrying")
                break
            try:
                sent.append(await js.publish_async(row.subject, row.payload, headers=row.headers))
            except Exception as exc:  # noqa: BLE001 - recorded on the row or re-raised
                if isinstance(exc, _CONNECTION_ERRORS) or not self.bus.connected:
                    connection_error = exc
                    break
                sent.append(exc)
        futures = [f for f in sent if isinstance(f, asyncio.Future)]
        if futures:
            await asyncio.wait(futures, timeout=timeout)
        outcomes: list = []
        timed_out = False
        for future in sent:
            if isinstance(future, Exception):
                outcome = future
            elif future.done() and not future.cancelled():
                outcome = future.exception()
            else:
                future.cancel()  # frees its slot in the client's window of pending publishes
                # JetStream is slow for every row: one row is charged the
                # timeout, as before, and the rest go again next pass.
                outcome = _NOT_SENT if timed_out else nats.errors.TimeoutError()
                timed_out = True
            if isinstance(outcome, _CONNECTION_ERRORS):
                connection_error = connection_error or outcome
            outcomes.append(outcome)
        outcomes.extend([_NOT_SENT] * (len(rows) - len(sent)))
        if connection_error is None and not self.bus.connected:
            connection_error = Unavailable("NATS connection lost while publishing")
        if connection_error is not None:
            # An outage costs no attempt: what it left unanswered goes again.
            outcomes = [
                _NOT_SENT if isinstance(o, (*_CONNECTION_ERRORS, nats.errors.TimeoutError)) else o
                for o in outcomes
            ]
        return outcomes, connection_error

    async def _record_failure(self, session: AsyncSession, row, exc: Exception) -> None:
        t = self.table
        attempts = row.attempts + 1
        error = (f"{type(exc).__name__}: {exc}")[: self.error_length]
        values: dict = {"attempts": attempts, "last_error": error}
        if attempts >= self.max_attempts:
            values["parked_at"] = func.now()
            OUTBOX_PARKED.labels(self.service, row.subject).inc()
            log.error(
                "outbox relay: event %s to %s parked after %d failed attempts: %s",
                row.id, row.subject, attempts, error,
                extra={"event_id": str(row.id), "subject": row.subject, "attempts": attempts},
            )
        else:
            delay = self.retry_delay(attempts)
            values["next_attempt_at"] = func.now() + dt.timedelta(seconds=delay)
            log.warning(
                "outbox relay: event %s to %s failed (attempt %d of %d), retrying in %.1fs: %s",
                row.id, row.subject, attempts, self.max_attempts, delay, error,
            )
        await session.execute(update(t).where(t.c.id == row.id).values(**values))

    async def purge_published(self) -> int:
        t = self.table
        self._last_purge = time.monotonic()  # a failing purge waits its turn too
        async with self.db.session_scope() as session:
            result = await session.execute(
                delete(t).where(t.c.published_at < utcnow() - self.retention)
            )
        return result.rowcount or 0

    def wake(self) -> None:
        """Look at the outbox now: for rows committed other than through
        `enqueue` (which wakes the relay itself)."""
        self._wakeup.set()

    async def stop(self) -> None:
        """Ask run() to make its last pass and return."""
        self._stopped.set()
        self._wakeup.set()
