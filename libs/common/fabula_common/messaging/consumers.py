"""Durable JetStream consumers with an idempotent inbox.

Each event is handled in one transaction together with the insert of its id
into the service's `processed_events` table (see `inbox`); a redelivered or
re-published event finds its id there and is acknowledged without being
applied again. Acks are explicit and sent only after the commit, so a crash
mid-way means a redelivery, never a loss.

A failing event is redelivered after growing delays, `CONSUMER_MAX_DELIVER`
times in all, then moved to the consumer's dead-letter subject (see
`dead_letters`) and acknowledged, so it is kept and visible instead of retried
forever. A message no code can decode goes there at once. While the database
is unreachable the consumer stops fetching, so an outage of the database
does not use up the deliveries of the events it would have applied.
Each message is handled under its own request id (the one it carries, or a
fresh one), reset afterwards.

A consumer takes either a `handler`, called once per event in its own
transaction, or a `batch_handler`, called with every new event of a fetched
batch in one transaction: the inbox rows of the whole batch are inserted in
one statement (`ON CONFLICT DO NOTHING RETURNING` names the new ones), the
handler applies those, and every message is acknowledged after the commit.
Should the batch fail for anything but the database being down, its events
are handled again one by one (each in a transaction of its own, through the
same batch handler), so one poisoned event is retried and dead-lettered as
above while the others are applied.

Each event's line ("consumer <durable>: event <id> handled") is logged at
DEBUG on `fabula.events.access`, an access logger (`ACCESS_LOG_LEVEL=DEBUG`
shows one per event, under the event's own request id).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import nats.errors
from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import String, Table, bindparam, delete, func, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_common.context import request_id_scope
from fabula_common.db import Database, utcnow
from fabula_common.messaging.bus import EventBus
from fabula_common.messaging.dead_letters import send_to_dead_letters
from fabula_common.messaging.headers import MSG_ID_HEADER, REQUEST_ID_HEADER
from fabula_common.metrics import CONSUMER_DEAD_LETTERED, CONSUMER_HANDLED, CONSUMER_PENDING
from fabula_common.tracing import consumer_span, tracing_provider

log = logging.getLogger(__name__)
# One line per consumed event, like a request's access line (see logging.ACCESS_LOGGERS).
events_log = logging.getLogger("fabula.events.access")

E = TypeVar("E", bound=Message)

# The database, not the event, failed: the event will be retried once it is back.
_DATABASE_ERRORS = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    ConnectionError,
)


# A batch's statements take arrays of its rows (unnest, = ANY). A prepared
# statement's generic plan knows neither their length nor their contents and
# was seen to scan a whole table per row; planned with its values, each
# statement uses the indexes. Random reads are costed as what they are for
# the rows a batch probes (cached: about as cheap as sequential ones, the
# usual setting for SSDs) rather than Postgres's default for spinning disks,
# under which probing a few hundred ids planned as a scan of the whole
# ledger or reservations once they held a few tens of thousands of rows
# (the database's CPU per event grew by half over a bench of 80,000).
_PLAN_EACH_BATCH = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
    " set_config('random_page_cost', '1.1', true)"
)

# How long a fetch waits for more once it has a message: the longest an
# event waits for others to share its batch.
_MORE_SECONDS = 0.02


def _is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, _DATABASE_ERRORS) or (
        isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    )


def _inbox_insert(processed: Table):
    """Insert a batch's event ids into the inbox in one statement, returning
    the ids that were not there yet."""
    batch = func.unnest(
        bindparam("event_ids", type_=ARRAY(String)), bindparam("subjects", type_=ARRAY(String))
    ).table_valued("event_id", "subject").render_derived(name="batch")
    return (
        insert(processed)
        .from_select(["event_id", "subject"], select(batch.c.event_id, batch.c.subject))
        .on_conflict_do_nothing()
        .returning(processed.c.event_id)
    )


class EventConsumer(Generic[E]):
    """Background worker applying one subject's events with `handler` (one
    event per transaction) or `batch_handler` (a fetched batch per transaction)."""

    batch_size = 32
    # Events per fetch and transaction for a batch handler.
    batch_handler_size = 500
    ack_wait_seconds = 30.0
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
        handler: Callable[[AsyncSession, E], Awaitable[None]] | None = None,
        batch_handler: Callable[[AsyncSession, list[E]], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.processed = processed
        self.service = service
        self.durable = durable
        self.subject = subject
        self.message_type = message_type
        self.batch_handler = batch_handler
        if batch_handler is not None:
            if handler is not None:
                raise ValueError("give a consumer a handler or a batch_handler, not both")
            self.batch_size = self.batch_handler_size
            # An event handled alone (a failed batch's) is a batch of one.
            handler = lambda session, event: batch_handler(session, [event])  # noqa: E731
            self._insert_batch_ids = _inbox_insert(processed)
        self.handler = handler
        settings = bus.settings
        self.max_deliver = settings.consumer_max_deliver
        self.retry_base_seconds = settings.consumer_retry_base_seconds
        self.retry_max_seconds = settings.consumer_retry_max_seconds
        self._database_down = False
        self._stopped = asyncio.Event()
        self._subscription = None
        self._last_purge = 0.0
        self._prefetch: asyncio.Task | None = None

    async def purge_processed(self) -> int:
        """Forget this consumer's event ids older than the retention."""
        self._last_purge = time.monotonic()
        t = self.processed
        async with self.db.session_scope() as session:
            result = await session.execute(
                delete(t).where(t.c.subject == self.subject, t.c.processed_at < utcnow() - self.retention)
            )
        return result.rowcount or 0

    def retry_delay(self, deliveries: int) -> float:
        """Seconds before delivery `deliveries + 1`."""
        return min(self.retry_max_seconds, self.retry_base_seconds * 2 ** max(deliveries - 1, 0))

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_seconds,
            # One delivery more than we try the handler: should the process
            # die during the last try, the spare one still dead-letters it.
            max_deliver=self.max_deliver + 1,
            filter_subject=self.subject,
        )

    async def _subscribe(self):
        if self._subscription is None:
            js = await self.bus.jetstream()
            stream = self.bus.settings.nats_stream
            # Creating a durable consumer that exists with another config
            # updates it (max deliveries, ack wait), which pull_subscribe
            # alone would not: it binds to the consumer as it is.
            await js.add_consumer(stream, self.consumer_config())
            self._subscription = await js.pull_subscribe_bind(durable=self.durable, stream=stream)
        return self._subscription

    async def _database_answers(self) -> bool:
        try:
            async with self.db.session_scope() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure means "down"
            log.warning("consumer %s: database unreachable (%r)", self.durable, exc)
            return False
        return True

    async def _wait_for_database(self) -> None:
        delay = 0.5
        while not self._stopped.is_set():
            if await self._database_answers():
                self._database_down = False
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def run(self) -> None:
        backoff = 0.5
        last_lag_check = 0.0
        while not self._stopped.is_set():
            if time.monotonic() - self._last_purge > self.purge_every_seconds:
                try:
                    await self.purge_processed()
                except Exception as exc:  # noqa: BLE001 - housekeeping; retried next time
                    log.warning("consumer %s: purge failed: %r", self.durable, exc)
            if self._database_down:
                await self._wait_for_database()
                continue
            try:
                subscription = await self._subscribe()
                if time.monotonic() - last_lag_check > 5:
                    last_lag_check = time.monotonic()
                    info = await subscription.consumer_info()
                    CONSUMER_PENDING.labels(self.service, self.durable).set(info.num_pending)
                if self.batch_handler is not None:
                    messages = await self._unless_stopped(self._fetch_ahead(subscription))
                else:
                    messages = await self._unless_stopped(self._fetch(subscription))
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                # An empty fetch; nats-py raises the asyncio one when its own
                # deadline passed while the event loop was busy.
                continue
            except Exception as exc:  # noqa: BLE001 - NATS down or restarted: resubscribe
                log.warning("consumer %s: %r; retrying", self.durable, exc)
                await self._drop_prefetch()
                self._subscription = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.5
            if not messages:
                continue  # stopped while waiting
            try:
                if self.batch_handler is not None:
                    await self.handle_batch(messages)
                    continue
                for message in messages:
                    if self._database_down:
                        # Left for a later delivery, once the database is back.
                        await message.nak(delay=self.retry_base_seconds)
                        continue
                    await self.handle(message)
            except Exception as exc:  # noqa: BLE001 - an ack lost with its connection
                # The unacknowledged events come back and the inbox absorbs
                # the ones already applied; this loop must go on regardless.
                log.warning("consumer %s: %r while acknowledging; resubscribing", self.durable, exc)
                await self._drop_prefetch()
                self._subscription = None
        await self._drop_prefetch()

    async def _unless_stopped(self, fetch: Awaitable[list[Msg]]) -> list[Msg]:
        """What `fetch` returns, or nothing if stop() comes first: an idle
        consumer stops at once instead of waiting out its fetch (and a
        process's consumers, stopped one after another, add no second each).
        A message delivered to the fetch given up is redelivered after the
        ack wait: late, never lost."""
        fetching = asyncio.ensure_future(fetch)
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({fetching, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if fetching.done():
            return fetching.result()
        fetching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fetching
        return []

    async def _fetch_ahead(self, subscription) -> list[Msg]:
        """The next batch, and the fetch of the one after it started, so it
        arrives while this one is applied (a batch handler only)."""
        fetching, self._prefetch = self._prefetch, None
        messages = await (fetching or self._fetch(subscription))
        self._prefetch = asyncio.create_task(self._fetch(subscription))
        return messages

    async def _fetch(self, subscription) -> list[Msg]:
        """Up to `batch_size` messages, as soon as there is one. (A single
        fetch of many that finds none waits its whole timeout to fill up:
        up to a second of lag at a low rate.) Waits up to a second for the
        first, then takes what else is there at once."""
        messages = await subscription.fetch(1, timeout=1.0)
        if self.batch_size > 1:
            try:
                messages += await subscription.fetch(self.batch_size - 1, timeout=_MORE_SECONDS)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                pass  # nothing more right now
        return messages

    async def _drop_prefetch(self) -> None:
        """Give back what a fetch ahead holds (stopping or resubscribing), so
        it is redelivered now rather than after the ack wait."""
        fetching, self._prefetch = self._prefetch, None
        if fetching is None:
            return
        if not fetching.done():
            fetching.cancel()
        await asyncio.wait([fetching])
        if fetching.cancelled() or fetching.exception() is not None:
            return  # nothing held: cancelled, empty or failed
        for message in fetching.result():
            try:
                await message.nak()
            except Exception:  # noqa: BLE001 - the connection is gone: redelivered after the ack wait
                return

    async def handle(self, message: Msg) -> None:
        headers = message.headers or {}
        # Its own request id for this message's log lines, gone afterwards.
        with request_id_scope(headers.get(REQUEST_ID_HEADER)):
            # Traced as a child of the span that enqueued the event (when tracing is on).
            with consumer_span(self.durable, message.subject, headers):
                await self._handle(message)

    async def _handle(self, message: Msg) -> None:
        headers = message.headers or {}
        deliveries = message.metadata.num_delivered or 1
        try:
            event = self.message_type.FromString(message.data)
            event_id = getattr(event, "event_id", "") or headers[MSG_ID_HEADER]
        except (DecodeError, KeyError) as exc:
            # A message no version of this code can read: retrying cannot help.
            log.error("consumer %s: undecodable message on %s", self.durable, message.subject)
            CONSUMER_HANDLED.labels(self.service, self.durable, "poison").inc()
            await self._dead_letter(message, deliveries, f"undecodable: {exc!r}")
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
        except Exception as exc:  # noqa: BLE001 - retried, then dead-lettered
            CONSUMER_HANDLED.labels(self.service, self.durable, "failed").inc()
            # An outage of the database is no fault of the event: it is not
            # dead-lettered for it, and fetching pauses until the database is back.
            if _is_database_error(exc) and not await self._database_answers():
                self._database_down = True
            if deliveries >= self.max_deliver and not self._database_down:
                log.exception(
                    "consumer %s: event %s failed on delivery %d of %d; dead-lettered",
                    self.durable, event_id, deliveries, self.max_deliver,
                    extra={"event_id": event_id, "subject": message.subject},
                )
                await self._dead_letter(message, deliveries, f"{type(exc).__name__}: {exc}")
                return
            delay = self.retry_delay(deliveries)
            log.exception(
                "consumer %s: event %s failed on delivery %d of %d; redelivered in %.1fs",
                self.durable, event_id, deliveries, self.max_deliver, delay,
                extra={"event_id": event_id, "subject": message.subject},
            )
            await message.nak(delay=delay)
            return
        await message.ack()
        result = "handled" if first_time else "duplicate"
        CONSUMER_HANDLED.labels(self.service, self.durable, result).inc()
        self._log_handled(event_id, message.subject, result)

    def _log_handled(self, event_id: str, subject: str, result: str) -> None:
        """The event's line, under the request id in effect (the event's)."""
        if events_log.isEnabledFor(logging.DEBUG):
            events_log.debug("consumer %s: event %s %s", self.durable, event_id, result,
                             extra={"event_id": event_id, "subject": subject, "result": result})

    async def handle_batch(self, messages: list[Msg]) -> None:
        """Apply the new events of `messages` in one transaction with the
        batch handler, then acknowledge them all (duplicates included). A
        message that cannot be decoded goes to the dead letters as alone; a
        failing batch is handled again one message at a time."""
        decoded: list[tuple[Msg, str]] = []
        events: list[E] = []
        for message in messages:
            try:
                event = self.message_type.FromString(message.data)
                event_id = getattr(event, "event_id", "") or (message.headers or {})[MSG_ID_HEADER]
            except (DecodeError, KeyError):
                await self.handle(message)  # dead-lettered there, under its request id
                continue
            decoded.append((message, event_id))
            events.append(event)
        if len(decoded) == 1:
            # Alone (a redelivered event, often): its failure is its own.
            await self.handle(decoded[0][0])
            return
        if not decoded:
            return
        if self._database_down:
            for message, _ in decoded:
                await message.nak(delay=self.retry_base_seconds)
            return
        applied: set[str] = set()
        try:
            async with self.db.session_scope() as session:
                await session.execute(_PLAN_EACH_BATCH)
                new_ids = set(
                    await session.scalars(
                        self._insert_batch_ids,
                        {
                            "event_ids": [event_id for _, event_id in decoded],
                            "subjects": [message.subject for message, _ in decoded],
                        },
                    )
                )
                fresh: list[E] = []
                for (_, event_id), event in zip(decoded, events, strict=True):
                    # The first of several copies inside the batch is the one applied.
                    if event_id in new_ids and event_id not in applied:
                        applied.add(event_id)
                        fresh.append(event)
                if fresh:
                    await self.batch_handler(session, fresh)
        except Exception as exc:  # noqa: BLE001 - each event gets its own try below
            if _is_database_error(exc) and not await self._database_answers():
                self._database_down = True
                log.warning("consumer %s: database down; %d events left for later",
                            self.durable, len(decoded))
                CONSUMER_HANDLED.labels(self.service, self.durable, "failed").inc(len(decoded))
                for message, _ in decoded:
                    await message.nak(delay=self.retry_base_seconds)
                return
            log.warning("consumer %s: a batch of %d events failed (%r); handling them one by one",
                        self.durable, len(decoded), exc)
            for message, _ in decoded:
                if self._database_down:
                    await message.nak(delay=self.retry_base_seconds)
                else:
                    await self.handle(message)
            return
        for message, _ in decoded:
            await message.ack()
        duplicates = len(decoded) - len(applied)
        if applied:
            CONSUMER_HANDLED.labels(self.service, self.durable, "handled").inc(len(applied))
        if duplicates:
            CONSUMER_HANDLED.labels(self.service, self.durable, "duplicate").inc(duplicates)
        if events_log.isEnabledFor(logging.DEBUG) or tracing_provider() is not None:
            # Each event's line (and span, child of the one that enqueued it)
            # under its own request id, as a single event's would be.
            logged: set[str] = set()
            for message, event_id in decoded:
                result = "handled" if event_id in applied and event_id not in logged else "duplicate"
                logged.add(event_id)
                headers = message.headers or {}
                with (
                    request_id_scope(headers.get(REQUEST_ID_HEADER)),
                    consumer_span(self.durable, message.subject, headers),
                ):
                    self._log_handled(event_id, message.subject, result)

    async def _dead_letter(self, message: Msg, deliveries: int, error: str) -> None:
        """Move `message` to the dead-letter subject, then acknowledge it. If
        the move fails, the message is left unacknowledged and comes back."""
        js = await self.bus.jetstream()
        await send_to_dead_letters(
            js,
            self.bus,
            consumer=self.durable,
            subject=message.subject,
            data=message.data,
            headers=message.headers,
            deliveries=deliveries,
            error=error,
            stream_sequence=message.metadata.sequence.stream,
        )
        await message.ack()
        CONSUMER_DEAD_LETTERED.labels(self.service, self.durable).inc()
        CONSUMER_HANDLED.labels(self.service, self.durable, "dead_lettered").inc()
        log.error(
            "consumer %s: message %s on %s moved to the dead letters after %d deliveries: %s",
            self.durable, message.metadata.sequence.stream, message.subject, deliveries, error,
            extra={"subject": message.subject, "deliveries": deliveries},
        )

    async def stop(self) -> None:
        self._stopped.set()
