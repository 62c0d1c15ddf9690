"""EventConsumer against real Postgres and NATS JetStream."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from fabula.users.v1 import events_pb2
from fabula_common.messaging.bus import EventBus, subject_for
from fabula_common.messaging.consumers import EventConsumer
from fabula_common.messaging.outbox import OutboxRelay, enqueue
from fabula_common.settings import CommonSettings
from sqlalchemy import select


async def test_a_consumer_outlives_its_connection_closing_under_it(
    event_tables, test_stream, service_settings
):
    """The NATS connection can close between an event's commit and its ack:
    the consumer must carry on (the event comes back and is absorbed as a
    duplicate), never stop consuming for the rest of the process's life."""
    db, outbox, processed = event_tables
    settings = CommonSettings()
    subject = subject_for(settings, "consumer_test", f"closed_{uuid.uuid4().hex[:8]}")
    bus = EventBus(settings, "consumer-test")
    applied: list[str] = []

    async def handler(session, event: events_pb2.UserRegistered) -> None:
        applied.append(event.user_id)
        if event.user_id == "first":
            await bus.close()  # as if the connection dropped for good mid-event

    consumer = EventConsumer(
        db=db,
        bus=bus,
        processed=processed,
        service="consumer-test",
        durable=f"consumer-test-{uuid.uuid4().hex[:8]}",
        subject=subject,
        message_type=events_pb2.UserRegistered,
        handler=handler,
    )
    relay = OutboxRelay(db, outbox, bus, "consumer-test", service_settings)

    async def publish(user_id: str) -> None:
        async with db.session_scope() as session:
            await enqueue(
                session,
                outbox,
                subject,
                events_pb2.UserRegistered(event_id=str(uuid.uuid4()), user_id=user_id),
            )
        assert await relay.publish_pending() == 1

    consuming = asyncio.create_task(consumer.run())
    try:
        await publish("first")
        async with asyncio.timeout(10):
            while "first" not in applied:
                await asyncio.sleep(0.05)
        await publish("second")
        async with asyncio.timeout(15):
            while "second" not in applied:
                assert not consuming.done(), consuming.exception()
                await asyncio.sleep(0.05)
        assert applied == ["first", "second"]  # the redelivered first was not applied again
    finally:
        await consumer.stop()
        await asyncio.wait_for(consuming, timeout=5)
        await bus.close()


async def test_old_event_ids_are_forgotten_and_recent_ones_kept(event_tables):
    db, _outbox, processed = event_tables
    subject, other = "test.purge.kept.v1", "test.purge.other.v1"
    now = dt.datetime.now(dt.UTC)
    async with db.session_scope() as session:
        await session.execute(processed.insert(), [
            {"event_id": "old", "subject": subject, "processed_at": now - dt.timedelta(days=31)},
            {"event_id": "recent", "subject": subject, "processed_at": now - dt.timedelta(days=29)},
            # Another consumer's ids are its own to purge.
            {"event_id": "old-other", "subject": other, "processed_at": now - dt.timedelta(days=31)},
        ])
    consumer = EventConsumer(
        db=db, bus=EventBus(CommonSettings(), name="purge-test"), processed=processed,
        service="consumer-test", durable="purge-test", subject=subject,
        message_type=events_pb2.UserRegistered, handler=None,
    )
    assert await consumer.purge_processed() == 1
    async with db.session_scope() as session:
        left = set(await session.scalars(select(processed.c.event_id)))
    assert left == {"recent", "old-other"}
