"""Durable JetStream consumers with an idempotent inbox.

Each event is handled in one transaction together with the insert of its id
into the service's `processed_events` table; a redelivered or re-published
event finds its id there and is acknowledged without being applied again.
Acks are explicit and sent only after the commit, so a crash mid-way means a
redelivery, never a loss.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import nats.errors
from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_common.context import request_id_var
from fabula_common.db import Database, utcnow
from fabula_common.events import EventBus
from fabula_common.metrics import CONSUMER_HANDLED, CONSUMER_PENDING
from fabula_common.outbox import MSG_ID_HEADER, REQUEST_ID_HEADER
from fabula_common.tracing import consumer_span

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Message)


def processed_events_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("subject", String(255), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class EventConsumer(Generic[E]):
    """Background worker applying one subject's events with `handler`."""

    batch_size = 32
    ack_wait_seconds = 30.0
    retry_delay_seconds = 2.0
    # An id is kept far longer than a redelivery or a re-publish can come
    # (JetStream's duplicate window is minutes), then deleted.
    retention = dt.timedelta(days=30)
    purge_every_seconds = 3600.0

    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        processed: Table,
        service: str,
        durable: str,
        subject: str,
        message_type: type[E],
        handler: Callable[[AsyncSession, E], Awaitable[None]],
    ) -> None:
        self.db = db
        self.bus = bus
        self.processed = processed
        self.service = service
        self.durable = durable
        self.subject = subject
        self.message_type = message_type
        self.handler = handler
        self._stopped = asyncio.Event()
        self._subscription = None
        self._last_purge = 0.0

    async def purge_processed(self) -> int:
        """Forget this consumer's event ids older than the retention."""
        self._last_purge = time.monotonic()
        t = self.processed
        async with self.db.session_scope() as session:
            result = await session.execute(
                delete(t).where(t.c.subject == self.subject, t.c.processed_at < utcnow() - self.retention)
            )
        return result.rowcount or 0

    async def _subscribe(self):
        if self._subscription is None:
            js = await self.bus.jetstream()
            self._subscription = await js.pull_subscribe(
                self.subject,
                durable=self.durable,
                stream=self.bus.settings.nats_stream,
                config=ConsumerConfig(
                    durable_name=self.durable,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=self.ack_wait_seconds,
                    max_deliver=-1,
                    filter_subject=self.subject,
                ),
            )
        return self._subscription

    async def run(self) -> None:
        backoff = 0.5
        last_lag_check = 0.0
        while not self._stopped.is_set():
            if time.monotonic() - self._last_purge > self.purge_every_seconds:
                try:
                    await self.purge_processed()
                except Exception as exc:  # noqa: BLE001 - housekeeping; retried next time
                    log.warning("consumer %s: purge failed: %r", self.durable, exc)
            try:
                subscription = await self._subscribe()
                if time.monotonic() - last_lag_check > 5:
                    last_lag_check = time.monotonic()
                    info = await subscription.consumer_info()
                    CONSUMER_PENDING.labels(self.service, self.durable).set(info.num_pending)
                messages = await subscription.fetch(self.batch_size, timeout=1.0)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                # An empty fetch; nats-py raises the asyncio one when its own
                # deadline passed while the event loop was busy.
                continue
            except Exception as exc:  # noqa: BLE001 - NATS down or restarted: resubscribe
                log.warning("consumer %s: %r; retrying", self.durable, exc)
                self._subscription = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.5
            try:
                for message in messages:
                    await self.handle(message)
            except Exception as exc:  # noqa: BLE001 - an ack lost with its connection
                # The unacknowledged events come back and the inbox absorbs
                # the ones already applied; this loop must go on regardless.
                log.warning("consumer %s: %r while acknowledging; resubscribing", self.durable, exc)
                self._subscription = None

    async def handle(self, message: Msg) -> None:
        # Traced as a child of the span that enqueued the event (when tracing is on).
        with consumer_span(self.durable, message.subject, message.headers):
            await self._handle(message)

    async def _handle(self, message: Msg) -> None:
        headers = message.headers or {}
        request_id_var.set(headers.get(REQUEST_ID_HEADER))
        try:
            event = self.message_type.FromString(message.data)
            event_id = getattr(event, "event_id", "") or headers[MSG_ID_HEADER]
        except (DecodeError, KeyError):
            # A message no version of this code can read: retrying cannot help.
            log.error("consumer %s: undecodable message on %s, dropped", self.durable, message.subject)
            CONSUMER_HANDLED.labels(self.service, self.durable, "poison").inc()
            await message.term()
            return
        try:
            async with self.db.session_scope() as session:
                first_time = await session.scalar(
                    insert(self.processed)
                    .values(event_id=event_id, subject=message.subject)
                    .on_conflict_do_nothing()
                    .returning(self.processed.c.event_id)
                )
                if first_time:
                    await self.handler(session, event)
        except Exception:  # noqa: BLE001 - redelivered after the delay
            log.exception("consumer %s: event %s failed; will be redelivered", self.durable, event_id)
            CONSUMER_HANDLED.labels(self.service, self.durable, "failed").inc()
            await message.nak(delay=self.retry_delay_seconds)
            return
        await message.ack()
        result = "handled" if first_time else "duplicate"
        CONSUMER_HANDLED.labels(self.service, self.durable, result).inc()
        log.info("consumer %s: event %s %s", self.durable, event_id, result,
                 extra={"event_id": event_id, "subject": message.subject, "result": result})

    async def stop(self) -> None:
        self._stopped.set()
