"""EventConsumer against real Postgres and NATS JetStream."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from fabula.users.v1 import events_pb2
from fabula_common.messaging.bus import EventBus, subject_for
from fabula_common.messaging.consumers import EventConsumer
from fabula_common.messaging.dead_letters import dead_letters
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


async def _publish_all(db, outbox, relay, subject: str, events) -> None:
    async with db.session_scope() as session:
        for event in events:
            await enqueue(session, outbox, subject, event)
    while await relay.publish_pending():
        pass


async def test_a_batch_handler_applies_each_new_event_once_in_one_transaction(
    event_tables, test_stream, service_settings
):
    """A fetched batch is one call of the handler with the new events only: a
    copy inside the batch and an event applied before are acknowledged
    without being applied again, and nothing is left unacknowledged."""
    db, outbox, processed = event_tables
    settings = CommonSettings()
    subject = subject_for(settings, "consumer_test", f"batch_{uuid.uuid4().hex[:8]}")
    bus = EventBus(settings, "consumer-test")
    calls: list[list[str]] = []

    async def batch_handler(session, events: list[events_pb2.UserRegistered]) -> None:
        calls.append([event.user_id for event in events])

    durable = f"consumer-batch-{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(
        db=db, bus=bus, processed=processed, service="consumer-test", durable=durable,
        subject=subject, message_type=events_pb2.UserRegistered, batch_handler=batch_handler,
    )
    relay = OutboxRelay(db, outbox, bus, "consumer-test", service_settings)
    events = [events_pb2.UserRegistered(event_id=str(uuid.uuid4()), user_id=f"u{i}") for i in range(6)]
    applied_before = events[5]
    async with db.session_scope() as session:
        await session.execute(processed.insert().values(event_id=applied_before.event_id, subject=subject))
    await _publish_all(db, outbox, relay, subject, events)
    js = await bus.jetstream()
    # The same event re-published under another message id (as a replay does).
    await js.publish(subject, events[0].SerializeToString(), headers={"Nats-Msg-Id": uuid.uuid4().hex})

    await consumer._subscribe()  # the durable exists before its lag is looked at
    consuming = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(10):
            while True:
                info = await js.consumer_info(settings.nats_stream, durable)
                if calls and not info.num_ack_pending and not info.num_pending:
                    break
                await asyncio.sleep(0.05)
        assert calls == [["u0", "u1", "u2", "u3", "u4"]]
        async with db.session_scope() as session:
            recorded = set(await session.scalars(select(processed.c.event_id).where(processed.c.subject == subject)))
        assert recorded == {event.event_id for event in events}
    finally:
        await consumer.stop()
        await asyncio.wait_for(consuming, timeout=5)
        await bus.close()


async def test_a_poisoned_event_does_not_hold_up_or_lose_the_rest_of_its_batch(
    event_tables, test_stream, service_settings
):
    """The batch fails; its events are handled one by one: the good ones are
    applied once, the poisoned one is retried and then dead-lettered."""
    db, outbox, processed = event_tables
    settings = CommonSettings()
    subject = subject_for(settings, "consumer_test", f"poison_batch_{uuid.uuid4().hex[:8]}")
    bus = EventBus(settings, "consumer-test")
    applied: list[str] = []
    poisoned_tries = 0

    async def batch_handler(session, events: list[events_pb2.UserRegistered]) -> None:
        nonlocal poisoned_tries
        if any(event.user_id == "poison" for event in events):
            poisoned_tries += 1
            raise RuntimeError("cannot apply this one")
        applied.extend(event.user_id for event in events)

    durable = f"consumer-poison-{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(
        db=db, bus=bus, processed=processed, service="consumer-test", durable=durable,
        subject=subject, message_type=events_pb2.UserRegistered, batch_handler=batch_handler,
    )
    consumer.max_deliver, consumer.retry_base_seconds, consumer.retry_max_seconds = 2, 0.1, 0.2
    relay = OutboxRelay(db, outbox, bus, "consumer-test", service_settings)
    names = ["a", "b", "poison", "c", "d"]
    await _publish_all(db, outbox, relay, subject, [
        events_pb2.UserRegistered(event_id=str(uuid.uuid4()), user_id=name) for name in names
    ])
    consuming = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(15):
            while not [letter async for letter in dead_letters(bus, durable)]:
                assert not consuming.done(), consuming.exception()
                await asyncio.sleep(0.1)
        assert sorted(applied) == ["a", "b", "c", "d"]
        # The batch's try, then the poisoned event's own tries (max_deliver).
        assert poisoned_tries == 1 + 2
        [letter] = [letter async for letter in dead_letters(bus, durable)]
        assert events_pb2.UserRegistered.FromString(letter.data).user_id == "poison"
    finally:
        await consumer.stop()
        await asyncio.wait_for(consuming, timeout=5)
        await bus.close()
