"""Plans bought through Stripe: billing over real gRPC, Postgres and NATS, the
official SDK against a local server speaking Stripe's wire format, and
webhooks signed as Stripe signs them (delivered by the test, so it can
duplicate, reorder and tamper with them)."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import nats
import pytest
import stripe
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.billing.v1 import events_pb2 as billing_events
from fabula.users.v1 import events_pb2 as users_events
from fabula_billing.app import create_app
from fabula_billing.database import outbox
from fabula_billing.settings import Settings
from fabula_billing.subscriptions import inbox as inbox_cli
from fabula_billing.subscriptions.models import (
    PlanChange,
    StripeCustomer,
    StripeEvent,
    StripeInvoice,
    StripeSubscription,
)
from fabula_common.db import Database
from fabula_common.errors import error_reason
from fabula_common.messaging.bus import subject_for
from fabula_common.messaging.headers import MSG_ID_HEADER
from fabula_common.testing import free_port, running_app
from sqlalchemy import func, select, update

Stub = billing_pb2_grpc.BillingServiceStub
FAKE_STRIPE_PATH = Path(__file__).resolve().parents[3] / "tests" / "fakes" / "fake_stripe.py"
WEBHOOK_SECRET = "whsec_billing_tests"


def _load_fake_stripe():
    # tests/ is not a package (and pytest runs with --import-mode=importlib).
    name = "fake_stripe"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FAKE_STRIPE_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fake_stripe = _load_fake_stripe()


@pytest.fixture(scope="module")
async def stripe_fake() -> AsyncIterator:
    # No webhook URL: the tests deliver the events themselves.
    async with fake_stripe.FakeStripe(webhook_secret=WEBHOOK_SECRET) as fake:
        yield fake


def stripe_settings(fake, **overrides) -> Settings:
    values = {
        "grpc_port": free_port(),
        "stripe_api_key": "sk_test_billing",
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": fake.url,
        "stripe_price_pro": "price_pro",
        "stripe_price_enterprise": "price_enterprise",
        "stripe_timeout_seconds": 2.0,
        "stripe_event_retry_base_seconds": 0.2,
        "stripe_event_retry_max_seconds": 0.5,
        "stripe_event_poll_seconds": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
async def settings(test_database, test_stream, stripe_fake) -> Settings:
    return stripe_settings(stripe_fake)


@pytest.fixture(scope="module")
async def billing(settings: Settings) -> AsyncIterator[Stub]:
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield Stub(channel)


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


class Buyer:
    """One user going through checkout, and the events Stripe sent about it."""

    def __init__(self, billing: Stub, fake, db: Database) -> None:
        self.billing, self.fake, self.db = billing, fake, db
        self.user_id = str(uuid.uuid4())
        self.first_event = len(fake.events)
        self.subscription_id = ""

    async def checkout(self, plan: str = "pro") -> billing_pb2.CheckoutSession:
        return await self.billing.CreateCheckoutSession(
            billing_pb2.CreateCheckoutSessionRequest(user_id=self.user_id, plan=plan)
        )

    async def pay(self, plan: str = "pro") -> None:
        session = await self.checkout(plan)
        await self.fake.complete_checkout(session.session_id)
        self.subscription_id = self.fake.checkout_sessions[session.session_id]["subscription"]

    def events(self) -> list[dict]:
        """Events generated since this buyer started, in Stripe's order."""
        return self.fake.events[self.first_event :]

    def take_events(self) -> list[dict]:
        events = self.events()
        self.first_event = len(self.fake.events)
        return events

    async def deliver(self, record: dict, *, payload: str | None = None, signature: str | None = None):
        body = (payload if payload is not None else record["payload"]).encode()
        return await self.billing.ReceiveStripeEvent(
            billing_pb2.ReceiveStripeEventRequest(
                payload=body, signature=signature or self.fake.sign(body)
            )
        )

    async def deliver_all(self, records: list[dict]) -> None:
        for record in records:
            await self.deliver(record)
        await self.handled([record["id"] for record in records])

    async def handled(self, event_ids: list[str]) -> None:
        async def all_handled() -> bool:
            async with self.db.session_scope() as session:
                count = await session.scalar(
                    select(func.count()).where(
                        StripeEvent.id.in_(event_ids), StripeEvent.handled_at.is_not(None)
                    )
                )
            return count == len(event_ids)

        await eventually(all_handled)

    async def usage(self) -> billing_pb2.UsageSummary:
        return await self.billing.GetUsage(billing_pb2.GetUsageRequest(user_id=self.user_id))

    async def subscription(self) -> billing_pb2.Subscription:
        return await self.billing.GetSubscription(
            billing_pb2.GetSubscriptionRequest(user_id=self.user_id)
        )

    async def plan_changes(self) -> list[tuple[str, str, str]]:
        async with self.db.session_scope() as session:
            rows = await session.scalars(
                select(PlanChange)
                .where(PlanChange.user_id == uuid.UUID(self.user_id))
                .order_by(PlanChange.id)
            )
            return [(row.previous_plan, row.plan, row.source) for row in rows]


@pytest.fixture
def buyer(billing, stripe_fake, db) -> Buyer:
    return Buyer(billing, stripe_fake, db)


async def test_checkout_creates_one_customer_per_user_and_carries_the_user(buyer, stripe_fake):
    first = await buyer.checkout("pro")
    second = await buyer.checkout("enterprise")
    session = stripe_fake.checkout_sessions[first.session_id]
    assert first.checkout_url == session["url"]
    assert session["client_reference_id"] == buyer.user_id
    assert session["metadata"] == {"user_id": buyer.user_id, "plan": "pro"}
    assert session["mode"] == "subscription"
    # The customer was created once and reused.
    assert stripe_fake.checkout_sessions[second.session_id]["customer"] == session["customer"]
    customers = [c for c in stripe_fake.customers.values()
                 if c["metadata"].get("user_id") == buyer.user_id]
    assert len(customers) == 1


async def test_a_paid_checkout_puts_the_user_on_pro_at_once_keeping_usage(buyer):
    # Two generations used on free before upgrading.
    for _ in range(2):
        await buyer.billing.ReserveGeneration(
            billing_pb2.ReserveGenerationRequest(user_id=buyer.user_id)
        )
    before = await buyer.usage()
    assert (before.plan, before.generations_limit) == ("free", 5)

    await buyer.pay("pro")
    events = buyer.take_events()
    assert [e["type"] for e in events] == [
        "customer.subscription.created", "invoice.paid", "checkout.session.completed"
    ]
    await buyer.deliver_all(events)

    usage = await buyer.usage()
    assert (usage.plan, usage.generations_limit) == ("pro", 50)
    # Counts stay within the period; the period is the subscription's.
    assert usage.generations_reserved == 2
    subscription = await buyer.subscription()
    assert (subscription.status, subscription.plan, subscription.cancel_at_period_end) == (
        "active", "pro", False
    )
    stripe_period = buyer.fake.subscriptions[buyer.subscription_id]["items"]["data"][0]
    assert subscription.current_period_end.ToSeconds() == stripe_period["current_period_end"]
    assert usage.period_end.ToSeconds() == stripe_period["current_period_end"]
    # The period keeps its start: it still holds the usage counted before.
    assert usage.period_start == before.period_start
    assert await buyer.plan_changes() == [("free", "pro", "stripe")]
    invoices = await buyer.billing.ListInvoices(
        billing_pb2.ListInvoicesRequest(user_id=buyer.user_id)
    )
    assert [(i.status, i.amount_paid, i.currency) for i in invoices.invoices] == [
        ("paid", 2000, "usd")
    ]


async def test_the_plan_change_is_published_with_the_change(buyer, db):
    await buyer.pay("enterprise")
    await buyer.deliver_all(buyer.take_events())
    async with db.session_scope() as session:
        rows = (await session.execute(
            select(outbox.c.payload).where(
                outbox.c.event_type == billing_events.PlanChanged.DESCRIPTOR.full_name
            )
        )).scalars().all()
    changes = [billing_events.PlanChanged.FromString(row) for row in rows]
    mine = [c for c in changes if c.user_id == buyer.user_id]
    assert [(c.previous_plan, c.plan, c.source, c.reference) for c in mine] == [
        ("free", "enterprise", "stripe", buyer.subscription_id)
    ]


async def test_duplicate_deliveries_have_no_further_effect(buyer):
    await buyer.pay("pro")
    events = buyer.take_events()
    await buyer.deliver_all(events)
    replies = [await buyer.deliver(record) for record in events]
    assert all(reply.duplicate for reply in replies)
    assert [reply.event_id for reply in replies] == [record["id"] for record in events]
    assert await buyer.plan_changes() == [("free", "pro", "stripe")]


async def portal_cancel(fake, subscription_id: str) -> None:
    """The user cancels at the period's end in Stripe's portal (not through us)."""
    client = stripe.StripeClient(
        "sk_test_portal", base_addresses={"api": fake.url},
        http_client=stripe.HTTPXClient(timeout=5),
    )
    await client.v1.subscriptions.update_async(subscription_id, {"cancel_at_period_end": True})


async def test_events_out_of_order_leave_stripes_current_state(buyer):
    await buyer.pay("pro")
    created = buyer.take_events()
    await portal_cancel(buyer.fake, buyer.subscription_id)
    await buyer.fake.delete_subscription(buyer.subscription_id)
    later = buyer.take_events()
    assert [e["type"] for e in later] == [
        "customer.subscription.updated", "customer.subscription.deleted"
    ]
    # Newest first: deleted, then updated, then the created ones (updated
    # before created, a known bug elsewhere).
    await buyer.deliver_all(list(reversed(later)) + list(reversed(created)))
    usage = await buyer.usage()
    subscription = await buyer.subscription()
    assert usage.plan == "free" and subscription.status == "canceled"


async def test_an_update_arriving_before_its_created_still_creates_the_subscription(buyer):
    await buyer.pay("pro")
    created = buyer.take_events()
    await portal_cancel(buyer.fake, buyer.subscription_id)
    updated = buyer.take_events()
    # Only the update reaches billing (the others are late).
    await buyer.deliver_all(updated)
    subscription = await buyer.subscription()
    assert (subscription.status, subscription.plan, subscription.cancel_at_period_end) == (
        "active", "pro", True
    )
    await buyer.deliver_all(created)
    assert (await buyer.subscription()).cancel_at_period_end is True


async def test_cancel_at_period_end_keeps_the_plan_until_deleted_and_resume_undoes_it(buyer):
    await buyer.pay("pro")
    await buyer.deliver_all(buyer.take_events())
    cancelled = await buyer.billing.CancelSubscription(
        billing_pb2.CancelSubscriptionRequest(user_id=buyer.user_id)
    )
    assert (cancelled.plan, cancelled.cancel_at_period_end) == ("pro", True)
    assert buyer.fake.subscriptions[buyer.subscription_id]["cancel_at_period_end"] is True
    await buyer.deliver_all(buyer.take_events())
    assert (await buyer.usage()).plan == "pro"

    resumed = await buyer.billing.ResumeSubscription(
        billing_pb2.ResumeSubscriptionRequest(user_id=buyer.user_id)
    )
    assert (resumed.plan, resumed.cancel_at_period_end) == ("pro", False)
    await buyer.billing.CancelSubscription(
        billing_pb2.CancelSubscriptionRequest(user_id=buyer.user_id)
    )
    # The period ends: Stripe deletes the subscription.
    await buyer.fake.renew(buyer.subscription_id)
    await buyer.deliver_all(buyer.take_events())
    usage = await buyer.usage()
    assert (usage.plan, usage.generations_limit) == ("free", 5)
    assert (await buyer.subscription()).status == "canceled"
    assert await buyer.plan_changes() == [("free", "pro", "stripe"), ("pro", "free", "stripe")]


async def test_past_due_keeps_the_plan_while_stripe_retries(buyer):
    await buyer.pay("pro")
    await buyer.fake.fail_payment(buyer.subscription_id)
    events = buyer.take_events()
    assert "invoice.payment_failed" in [e["type"] for e in events]
    await buyer.deliver_all(events)
    assert (await buyer.subscription()).status == "past_due"
    assert (await buyer.usage()).plan == "pro"


async def test_a_checkout_while_subscribed_is_refused(buyer):
    await buyer.pay("pro")
    await buyer.deliver_all(buyer.take_events())
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await buyer.checkout("enterprise")
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(refused.value) == "already-subscribed"


async def test_tampered_stale_or_unsigned_webhooks_are_refused_and_change_nothing(buyer, db):
    await buyer.pay("pro")
    record = buyer.take_events()[0]
    tampered = record["payload"].replace('"active"', '"canceled"')
    stale = buyer.fake.sign(record["payload"], timestamp=int(time.time()) - 301)
    wrong_secret = buyer.fake.sign(record["payload"], secret="whsec_someone_else")
    for payload, signature in (
        (tampered, record["signature"]),
        (record["payload"], stale),
        (record["payload"], wrong_secret),
        (record["payload"], "t=1,v1=00"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await buyer.deliver(record, payload=payload, signature=signature)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(refused.value) == "webhook-signature-invalid"
    async with db.session_scope() as session:
        assert await session.get(StripeEvent, record["id"]) is None
    assert (await buyer.usage()).plan == "free"


async def test_a_failed_handling_is_retried_with_backoff_and_never_lost(buyer, stripe_fake, db):
    await buyer.pay("pro")
    events = buyer.take_events()
    # Stripe unreachable while the events are handled: reading the
    # subscription fails, the events wait for their next attempt.
    port = stripe_fake.port
    await stripe_fake.stop()
    try:
        for record in events:
            await buyer.deliver(record)

        async def failed_twice() -> bool:
            async with db.session_scope() as session:
                event = await session.get(StripeEvent, events[0]["id"])
                return event is not None and event.attempts >= 2

        await eventually(failed_twice)
        assert (await buyer.usage()).plan == "free"
    finally:
        stripe_fake.port = port
        await stripe_fake.start()
    await buyer.handled([record["id"] for record in events])
    assert (await buyer.usage()).plan == "pro"
    assert await buyer.plan_changes() == [("free", "pro", "stripe")]


async def test_parked_events_are_listed_and_replayed_by_an_operator(buyer, db):
    await buyer.pay("pro")
    record = buyer.take_events()[0]
    await buyer.deliver(record)
    await buyer.handled([record["id"]])
    # As if it had failed for good: parked after its last attempt.
    async with db.session_scope() as session:
        await session.execute(
            update(StripeEvent)
            .where(StripeEvent.id == record["id"])
            .values(handled_at=None, attempts=12, parked_at=func.now(), last_error="boom")
        )
    out = io.StringIO()
    assert await inbox_cli.list_failed(db, 1000, out=out) >= 1
    assert record["id"] in out.getvalue() and "parked" in out.getvalue()
    assert await inbox_cli.replay(db, [record["id"]], out=io.StringIO()) == 1
    await buyer.handled([record["id"]])


async def test_set_plan_by_hand_is_recorded_and_survives_stripe_silence(buyer):
    usage = await buyer.billing.SetPlan(
        billing_pb2.SetPlanRequest(
            user_id=buyer.user_id, plan="enterprise", actor="admin-1", reason="comp account"
        )
    )
    assert usage.plan == "enterprise" and not usage.HasField("generations_limit")
    async with buyer.db.session_scope() as session:
        change = await session.scalar(
            select(PlanChange).where(PlanChange.user_id == uuid.UUID(buyer.user_id))
        )
    assert (change.plan, change.source, change.reference, change.reason) == (
        "enterprise", "manual", "admin-1", "comp account"
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await buyer.billing.SetPlan(
            billing_pb2.SetPlanRequest(user_id=buyer.user_id, plan="platinum", actor="admin-1")
        )
    assert error_reason(refused.value) == "unknown-plan"


async def test_legacy_period_fields_are_accepted(test_database, test_stream):
    async with fake_stripe.FakeStripe(
        webhook_secret=WEBHOOK_SECRET, legacy_period_fields=True
    ) as fake:
        # Only the top-level fields, as in API versions before 2025-03-31.
        settings = stripe_settings(fake)
        async with (
            running_app(create_app(settings)) as address,
            grpc.aio.insecure_channel(address) as channel,
        ):
            db = Database(settings)
            try:
                buyer = Buyer(Stub(channel), fake, db)
                await buyer.pay("pro")
                for item in fake.subscriptions[buyer.subscription_id]["items"]["data"]:
                    item.pop("current_period_start"), item.pop("current_period_end")
                await buyer.deliver_all(buyer.take_events())
                subscription = await buyer.subscription()
                top = fake.subscriptions[buyer.subscription_id]
                assert subscription.current_period_end.ToSeconds() == top["current_period_end"]
            finally:
                await db.dispose()


async def test_without_a_stripe_key_payments_say_they_are_not_configured(test_database, test_stream):
    settings = Settings(grpc_port=free_port())
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        stub = Stub(channel)
        user_id = str(uuid.uuid4())
        calls = (
            stub.CreateCheckoutSession(
                billing_pb2.CreateCheckoutSessionRequest(user_id=user_id, plan="pro")
            ),
            stub.CancelSubscription(billing_pb2.CancelSubscriptionRequest(user_id=user_id)),
            stub.CreatePortalSession(billing_pb2.CreatePortalSessionRequest(user_id=user_id)),
            stub.ReceiveStripeEvent(
                billing_pb2.ReceiveStripeEventRequest(payload=b"{}", signature="t=1,v1=00")
            ),
        )
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_reason(refused.value) == "payments-not-configured"
        # Everything else works.
        status = await stub.GetSubscription(billing_pb2.GetSubscriptionRequest(user_id=user_id))
        assert (status.plan, status.status) == ("free", "none")


async def test_deleting_a_subscriber_cancels_the_subscription_and_forgets_payments(
    buyer, stripe_fake, settings, db
):
    """UserDeleted while a subscription is live: Stripe stops charging at once
    and no payment record names the user any more. Delivered twice (the
    consumer's redelivery after a crash between Stripe and the commit): the
    second finds the subscription gone and changes nothing."""
    await buyer.pay("pro")
    await buyer.deliver_all(buyer.take_events())
    assert (await buyer.usage()).plan == "pro"

    event = users_events.UserDeleted(event_id=str(uuid.uuid4()), user_id=buyer.user_id)
    nc = await nats.connect(settings.nats_url, connect_timeout=2)
    try:
        js = nc.jetstream()
        subject = subject_for(settings, "users", "user_deleted")
        for _ in range(2):  # a new message id each time: past JetStream's duplicate window
            await js.publish(
                subject, event.SerializeToString(), headers={MSG_ID_HEADER: uuid.uuid4().hex}
            )
    finally:
        await nc.close()

    async def forgotten() -> bool:
        async with db.session_scope() as session:
            left = 0
            for model in (StripeCustomer, StripeSubscription, StripeInvoice, PlanChange):
                left += await session.scalar(
                    select(func.count()).select_from(model).where(
                        model.user_id == uuid.UUID(buyer.user_id)
                    )
                )
            return left == 0

    await eventually(forgotten)
    assert stripe_fake.subscriptions[buyer.subscription_id]["status"] == "canceled"
