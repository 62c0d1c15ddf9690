"""Outbox retries and parking, dead letters and their replay, stream limits
and per-message request ids, against real Postgres and NATS JetStream."""

from __future__ import annotations

import asyncio
import io
import signal
import uuid

import nats
import pytest
from fabula.users.v1 import events_pb2
from fabula_common.context import current_request_id, request_id_scope, request_id_var
from fabula_common.errors import Unavailable
from fabula_common.messaging.bus import EventBus, dead_letter_subject, subject_for
from fabula_common.messaging.consumers import EventConsumer
from fabula_common.messaging.dead_letters import dead_letters
from fabula_common.messaging.headers import (
    DEAD_LETTER_CONSUMER_HEADER,
    DEAD_LETTER_DELIVERIES_HEADER,
    DEAD_LETTER_ERROR_HEADER,
    DEAD_LETTER_SUBJECT_HEADER,
    REQUEST_ID_HEADER,
)
from fabula_common.messaging.outbox import OutboxRelay, enqueue
from fabula_common.messaging.replay import replay_dead_letters
from fabula_common.settings import CommonSettings
from fabula_common.testing import PrivateNats, free_port
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import REGISTRY
from sqlalchemy import any_, select


def _registered(user_id: str) -> events_pb2.UserRegistered:
    return events_pb2.UserRegistered(event_id=str(uuid.uuid4()), user_id=user_id)


async def _enqueue(db, outbox, subject: str, user_id: str) -> uuid.UUID:
    async with db.session_scope() as session:
        return await enqueue(session, outbox, subject, _registered(user_id))


# --- Outbox ------------------------------------------------------------------


async def test_a_failing_outbox_row_backs_off_then_is_parked_without_holding_up_the_rest(
    event_tables, service_settings
):
    db, outbox, _ = event_tables
    settings = CommonSettings()
    bus = EventBus(settings, "outbox-test")
    relay = OutboxRelay(db, outbox, bus, "outbox-test", service_settings)
    relay.max_attempts, relay.retry_base_seconds, relay.retry_max_seconds = 3, 0.5, 0.5
    # No stream listens on this subject: JetStream refuses the row every time.
    unroutable = f"nowhere_{uuid.uuid4().hex[:8]}.users.user_registered.v1"
    good = subject_for(settings, "outbox_test", f"good_{uuid.uuid4().hex[:8]}")
    bad_id = await _enqueue(db, outbox, unroutable, "bad")  # first in line
    behind = [await _enqueue(db, outbox, good, f"u{i}") for i in range(3)]
    parked_before = REGISTRY.get_sample_value(
        "fabula_outbox_parked_total", {"service": "outbox-test", "subject": unroutable}
    ) or 0.0

    async def row(event_id):
        async with db.session_scope() as session:
            return (await session.execute(select(outbox).where(outbox.c.id == event_id))).one()

    try:
        assert await relay.publish_pending() == 3  # the rows behind went out
        for event_id in behind:
            assert (await row(event_id)).published_at is not None
        failed = await row(bad_id)
        assert failed.attempts == 1 and failed.published_at is None and failed.parked_at is None
        assert failed.last_error and failed.next_attempt_at > failed.created_at

        # Not due yet: the backoff is honoured.
        assert await relay.publish_pending() == 0
        assert (await row(bad_id)).attempts == 1

        for attempt in (2, 3):
            await asyncio.sleep(0.6)
            assert await relay.publish_pending() == 0
            assert (await row(bad_id)).attempts == attempt
        parked = await row(bad_id)
        assert parked.parked_at is not None and parked.published_at is None
        assert REGISTRY.get_sample_value(
            "fabula_outbox_parked_total", {"service": "outbox-test", "subject": unroutable}
        ) == parked_before + 1

        # Parked rows are left alone, and no longer count as backlog.
        await asyncio.sleep(0.6)
        assert await relay.publish_pending() == 0
        assert (await row(bad_id)).attempts == 3
        assert REGISTRY.get_sample_value("fabula_outbox_backlog", {"service": "outbox-test"}) == 0
    finally:
        await bus.close()


async def test_nats_being_down_costs_an_outbox_row_no_attempt(event_tables, service_settings):
    db, outbox, _ = event_tables
    down = CommonSettings(nats_url=f"nats://127.0.0.1:{free_port()}", nats_timeout_seconds=0.5)
    bus = EventBus(down, "outbox-down-test")
    relay = OutboxRelay(db, outbox, bus, "outbox-down-test", service_settings)
    relay.max_attempts = 1
    event_id = await _enqueue(db, outbox, subject_for(down, "outbox_test", "down"), "waiting")
    with pytest.raises(Unavailable):
        await relay.publish_pending()
    async with db.session_scope() as session:
        attempts, parked_at = (
            await session.execute(
                select(outbox.c.attempts, outbox.c.parked_at).where(outbox.c.id == event_id)
            )
        ).one()
    assert attempts == 0 and parked_at is None


async def test_rows_held_by_an_outage_go_out_as_soon_as_nats_is_back(
    event_tables, service_settings, tmp_path
):
    """The relay backs off while NATS is down (up to 10 s between tries); the
    reconnection wakes it, so the rows do not wait out that backoff."""
    db, outbox, _ = event_tables
    server = PrivateNats(tmp_path / "store")
    server.start()
    settings = CommonSettings(nats_url=server.url, nats_stream=f"WAKE_{uuid.uuid4().hex[:8]}")
    bus = EventBus(settings, "outbox-wake-test")
    relay = OutboxRelay(db, outbox, bus, "outbox-wake-test", service_settings)
    relay.poll_seconds = 60.0  # only a wakeup can make it look again in time
    subject = subject_for(settings, "outbox_test", "wake")
    task = asyncio.create_task(relay.run())
    try:
        await bus.jetstream()  # connected (and the stream made) before the outage
        server.kill()
        event_id = await _enqueue(db, outbox, subject, "waited")
        await asyncio.sleep(4)  # a few failed tries: the backoff has grown past 4 s
        server.start()
        reconnected = asyncio.get_running_loop().time()
        while True:
            async with db.session_scope() as session:
                published_at = await session.scalar(
                    select(outbox.c.published_at).where(outbox.c.id == event_id)
                )
            if published_at is not None:
                break
            assert asyncio.get_running_loop().time() - reconnected < 4, "waited out the backoff"
            await asyncio.sleep(0.1)
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 10)
        await bus.close()
        server.stop()


async def test_a_frozen_jetstream_holds_a_pass_for_its_bound_and_gives_the_window_back(
    event_tables, service_settings, tmp_path
):
    """JetStream stops answering (its server frozen) with the client's window
    of unacknowledged publishes full: the pass ends within its bound, nothing
    is marked published or parked, at most one row is charged an attempt, and
    the window's slots are free again. Once the server answers, every row goes
    out, each once in the stream (what the frozen server had received is
    deduplicated by its message id)."""
    db, outbox, _ = event_tables
    server = PrivateNats(tmp_path / "store")
    server.start()
    settings = CommonSettings(
        nats_url=server.url, nats_stream=f"FROZEN_{uuid.uuid4().hex[:8]}", nats_timeout_seconds=0.5
    )
    bus = EventBus(settings, "outbox-frozen-test")
    bus.publish_window = 4  # a batch of 10 fills it
    relay = OutboxRelay(db, outbox, bus, "outbox-frozen-test", service_settings)
    relay.retry_base_seconds = relay.retry_max_seconds = 0.1
    subject = subject_for(settings, "outbox_test", "frozen")
    loop = asyncio.get_running_loop()
    frozen_pass = None

    async def rows():
        async with db.session_scope() as session:
            return (
                await session.execute(
                    select(outbox.c.attempts, outbox.c.published_at, outbox.c.parked_at).where(
                        outbox.c.id == any_(event_ids)
                    )
                )
            ).all()

    try:
        js = await bus.jetstream()
        event_ids = [await _enqueue(db, outbox, subject, f"frozen{i}") for i in range(10)]
        server.process.send_signal(signal.SIGSTOP)
        began = loop.time()
        # Its bound is the acknowledgements' one. A pass that waits for a slot
        # never ends, cancelled or not (nats-py turns the cancellation into a
        # row error), so it is watched rather than cancelled.
        frozen_pass = asyncio.ensure_future(relay.publish_pending())
        await asyncio.wait({frozen_pass}, timeout=5)
        assert frozen_pass.done(), "the pass waited for a slot in the window"
        assert frozen_pass.result() == 0
        assert loop.time() - began < 3 * settings.nats_timeout_seconds
        assert js.publish_async_pending() == 0, "unanswered publishes kept their slots"
        frozen = await rows()
        assert not any(r.published_at or r.parked_at for r in frozen)
        assert sum(r.attempts for r in frozen) <= 1

        server.process.send_signal(signal.SIGCONT)
        while not all(r.published_at for r in await rows()):
            assert loop.time() - began < 10, "rows not published once the server answered"
            await relay.publish_pending()
            await asyncio.sleep(0.1)
        info = await js.stream_info(settings.nats_stream)
        assert info.state.messages == 10
    finally:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
        if frozen_pass is not None:  # a stuck pass holds its rows' locks until answered
            await asyncio.wait({frozen_pass}, timeout=5)
        await bus.close()
        server.stop()


async def test_a_commit_during_a_relay_pass_is_published_without_waiting_for_the_poll(
    event_tables, service_settings
):
    """A wake-up that arrives while the relay is publishing is not lost: the
    event committed then goes out at once, not at the next poll."""
    db, outbox, _ = event_tables
    settings = CommonSettings()
    bus = EventBus(settings, "outbox-wakeup-test")
    relay = OutboxRelay(db, outbox, bus, "outbox-wakeup-test", service_settings)
    relay.poll_seconds = 60.0  # only the wake-up can bring the relay back in time
    subject = subject_for(settings, "outbox_test", f"wakeup_{uuid.uuid4().hex[:8]}")
    publish_pending = relay.publish_pending
    late: list[uuid.UUID] = []

    async def pass_with_a_commit_inside() -> int:
        published = await publish_pending()
        if not late:  # committed while this pass is still running
            late.append(await _enqueue(db, outbox, subject, "late"))
        return published

    relay.publish_pending = pass_with_a_commit_inside
    await _enqueue(db, outbox, subject, "first")
    task = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(5):
            while not late:
                await asyncio.sleep(0.02)
            while True:
                async with db.session_scope() as session:
                    published_at = await session.scalar(
                        select(outbox.c.published_at).where(outbox.c.id == late[0])
                    )
                if published_at is not None:
                    break
                await asyncio.sleep(0.05)
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 10)
        await bus.close()


async def test_a_burst_is_published_in_full_batches_in_order(event_tables, service_settings):
    """Pipelined publishing loses and reorders nothing: every row of a burst
    larger than a batch reaches the stream once, in the order enqueued. A
    batch is handed to the NATS client without yielding between rows, so it
    reaches the socket in a few writes, not one per row (which cost most of
    the relay's CPU)."""
    db, outbox, _ = event_tables
    settings = CommonSettings()
    bus = EventBus(settings, "outbox-burst-test")
    relay = OutboxRelay(db, outbox, bus, "outbox-burst-test", service_settings)
    relay.batch_size = 50
    subject = subject_for(settings, "outbox_test", f"burst_{uuid.uuid4().hex[:8]}")
    async with db.session_scope() as session:
        for i in range(120):
            await enqueue(session, outbox, subject, _registered(f"u{i:03d}"))
    nc = await nats.connect(settings.nats_url)
    try:
        js = await bus.jetstream()
        subscription = await js.pull_subscribe(subject, durable=None, stream=settings.nats_stream)
        transport, writes = bus._nc._transport, 0
        writelines = transport.writelines

        def counted(data):
            nonlocal writes
            writes += 1
            return writelines(data)

        transport.writelines = counted
        assert [await relay.publish_pending() for _ in range(4)] == [50, 50, 20, 0]
        assert writes <= 12  # a few per pass; one per row was 120
        received: list[str] = []
        while len(received) < 120:
            for message in await subscription.fetch(120 - len(received), timeout=5):
                received.append(events_pb2.UserRegistered.FromString(message.data).user_id)
                await message.ack()
        assert received == [f"u{i:03d}" for i in range(120)]
    finally:
        await nc.close()
        await bus.close()


# --- Consumers: dead letters and replay --------------------------------------


async def test_a_failing_event_is_dead_lettered_then_replayed_and_applied_once(
    event_tables, service_settings
):
    db, outbox, processed = event_tables
    settings = CommonSettings()
    subject = subject_for(settings, "consumer_test", f"poison_{uuid.uuid4().hex[:8]}")
    durable = f"dead-letter-test-{uuid.uuid4().hex[:8]}"
    bus = EventBus(settings, "dead-letter-test")
    js = await bus.jetstream()
    # As the previous release created its consumers: redelivered forever.
    await js.add_consumer(
        settings.nats_stream,
        ConsumerConfig(
            name=durable, durable_name=durable, ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL, max_deliver=-1, filter_subject=subject,
        ),
    )
    attempts: list[str] = []
    applied: list[str] = []
    broken = True

    async def handler(session, event: events_pb2.UserRegistered) -> None:
        attempts.append(event.user_id)
        if broken:
            raise RuntimeError("handler bug\non two lines")
        applied.append(event.user_id)

    consumer = EventConsumer(
        db=db, bus=bus, processed=processed, service="dead-letter-test", durable=durable,
        subject=subject, message_type=events_pb2.UserRegistered, handler=handler,
    )
    consumer.max_deliver, consumer.retry_base_seconds, consumer.retry_max_seconds = 3, 0.1, 0.4
    relay = OutboxRelay(db, outbox, bus, "dead-letter-test", service_settings)
    dead_before = REGISTRY.get_sample_value(
        "fabula_consumer_dead_lettered_total", {"service": "dead-letter-test", "consumer": durable}
    ) or 0.0

    consuming = asyncio.create_task(consumer.run())
    try:
        await _enqueue(db, outbox, subject, "poisoned")
        assert await relay.publish_pending() == 1
        async with asyncio.timeout(15):
            while not [letter async for letter in dead_letters(bus, durable)]:
                assert not consuming.done(), consuming.exception()
                await asyncio.sleep(0.1)
        assert attempts == ["poisoned"] * 3 and applied == []
        info = await js.consumer_info(settings.nats_stream, durable)
        assert info.config.max_deliver == 4  # the existing consumer took the new config
        async with asyncio.timeout(5):
            while info.num_ack_pending or info.num_pending:  # the original was acknowledged
                await asyncio.sleep(0.1)
                info = await js.consumer_info(settings.nats_stream, durable)
        assert REGISTRY.get_sample_value(
            "fabula_consumer_dead_lettered_total",
            {"service": "dead-letter-test", "consumer": durable},
        ) == dead_before + 1

        [letter] = [letter async for letter in dead_letters(bus, durable)]
        assert letter.headers[DEAD_LETTER_SUBJECT_HEADER] == subject
        assert letter.headers[DEAD_LETTER_CONSUMER_HEADER] == durable
        assert letter.headers[DEAD_LETTER_DELIVERIES_HEADER] == "3"
        assert "handler bug on two lines" in letter.headers[DEAD_LETTER_ERROR_HEADER]

        listing = io.StringIO()
        assert await replay_dead_letters(settings, durable, dry_run=True, out=listing) == 1
        assert "would replay" in listing.getvalue() and subject in listing.getvalue()
        assert len([letter async for letter in dead_letters(bus, durable)]) == 1

        broken = False  # the fix is deployed
        assert await replay_dead_letters(settings, durable, out=io.StringIO()) == 1
        async with asyncio.timeout(10):
            while not applied:
                await asyncio.sleep(0.05)
        assert [letter async for letter in dead_letters(bus, durable)] == []
        # Replaying the same event again (as if the letter were still there) is absorbed.
        await js.publish(letter.subject, letter.data, headers=letter.original_headers() | {
            "Nats-Msg-Id": uuid.uuid4().hex})
        await asyncio.sleep(1)
        assert applied == ["poisoned"]
        assert await replay_dead_letters(settings, durable, out=io.StringIO()) == 0
    finally:
        await consumer.stop()
        await asyncio.wait_for(consuming, timeout=5)
        await bus.close()


async def test_each_message_is_handled_under_its_own_request_id(event_tables, service_settings):
    db, outbox, processed = event_tables
    settings = CommonSettings()
    subject = subject_for(settings, "consumer_test", f"ids_{uuid.uuid4().hex[:8]}")
    bus = EventBus(settings, "request-id-test")
    seen: list[str | None] = []

    async def handler(session, event: events_pb2.UserRegistered) -> None:
        seen.append(current_request_id())

    consumer = EventConsumer(
        db=db, bus=bus, processed=processed, service="request-id-test",
        durable=f"request-id-test-{uuid.uuid4().hex[:8]}", subject=subject,
        message_type=events_pb2.UserRegistered, handler=handler,
    )
    relay = OutboxRelay(db, outbox, bus, "request-id-test", service_settings)
    try:
        with request_id_scope("req-from-the-gateway"):
            await _enqueue(db, outbox, subject, "with-id")
        await _enqueue(db, outbox, subject, "without-id")
        async with db.session_scope() as session:
            stored = list(await session.scalars(select(outbox.c.headers).where(outbox.c.subject == subject)))
        assert {h.get(REQUEST_ID_HEADER) for h in stored} == {"req-from-the-gateway", None}
        assert await relay.publish_pending() == 2

        subscription = await consumer._subscribe()
        messages = await subscription.fetch(2, timeout=5)
        token = request_id_var.set("outer")
        try:
            for message in messages:
                await consumer.handle(message)
                assert current_request_id() == "outer"  # nothing left behind
        finally:
            request_id_var.reset(token)
        first, second = seen
        assert first == "req-from-the-gateway"
        assert second and second not in ("req-from-the-gateway", "outer")
    finally:
        await bus.close()


# --- Stream limits -----------------------------------------------------------


async def test_stream_limits_are_set_on_creation_and_applied_to_an_existing_stream(test_stream):
    name = f"{test_stream}_LIMITS_{uuid.uuid4().hex[:6]}"
    prefix = f"limits_{uuid.uuid4().hex[:8]}"
    first = CommonSettings(
        nats_stream=name, nats_subject_prefix=prefix,
        nats_stream_max_age_seconds=3600, nats_stream_max_bytes=10_000_000,
    )
    changed = first.model_copy(
        update={"nats_stream_max_age_seconds": 7200.0, "nats_stream_max_bytes": -1}
    )
    nc = await nats.connect(first.nats_url)
    try:
        bus = EventBus(first, "limits-test")
        await bus.jetstream()
        await bus.close()
        config = (await nc.jetstream().stream_info(name)).config
        assert (config.max_age, config.max_bytes, config.num_replicas) == (3600, 10_000_000, 1)

        bus = EventBus(changed, "limits-test")
        await bus.jetstream()
        await bus.close()
        config = (await nc.jetstream().stream_info(name)).config
        assert (config.max_age, config.max_bytes) == (7200, -1)
        assert config.subjects == [f"{prefix}.>"]
        assert dead_letter_subject(changed, "c").startswith(f"{prefix}.")  # kept in the stream
    finally:
        await nc.jetstream().delete_stream(name)
        await nc.close()
