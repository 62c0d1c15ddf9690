"""Wiring of the billing process."""

from __future__ import annotations

from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.generation.v1 import events_pb2 as generation_events
from fabula.generation.v1 import generation_pb2_grpc
from fabula.stories.v1 import events_pb2 as stories_events
from fabula.users.v1 import events_pb2 as users_events
from fabula_common.db import Database
from fabula_common.grpc_client import open_channel
from fabula_common.grpc_server import GrpcApp
from fabula_common.health import NATS, POSTGRES
from fabula_common.messaging.bus import EventBus, subject_for
from fabula_common.messaging.consumers import EventConsumer
from fabula_common.messaging.outbox import OutboxRelay

from fabula_billing.database import outbox, processed_events
from fabula_billing.settings import Settings
from fabula_billing.subscriptions.service import SubscriptionService
from fabula_billing.subscriptions.servicer import SubscriptionsServicer
from fabula_billing.subscriptions.stripe_api import StripeApi
from fabula_billing.subscriptions.tasks import StripeInboxWorker
from fabula_billing.usage.service import BillingService
from fabula_billing.usage.servicer import BillingServicer
from fabula_billing.usage.tasks import GenerationRecords, ReservationExpiryWorker

SERVICE = "billing"


class Servicer(BillingServicer, SubscriptionsServicer):
    """BillingService: usage methods from the usage domain, payment methods
    from the subscriptions domain."""

    def __init__(
        self,
        db: Database,
        billing: BillingService,
        subscriptions: SubscriptionService,
        inbox: StripeInboxWorker,
    ) -> None:
        BillingServicer.__init__(self, db, billing)
        SubscriptionsServicer.__init__(self, db, subscriptions, inbox)


def create_app(settings: Settings) -> GrpcApp:
    app = GrpcApp(SERVICE, settings)
    db = Database(settings)
    bus = EventBus(settings, name=SERVICE)
    billing = BillingService(settings)
    subscriptions = SubscriptionService(
        settings, StripeApi(settings), billing, subject_for(settings, "billing", "plan_changed")
    )
    inbox = StripeInboxWorker(db, subscriptions, settings)

    app.add_servicer(
        billing_pb2_grpc.add_BillingServiceServicer_to_server,
        Servicer(db, billing, subscriptions, inbox),
        billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name,
    )
    consumed = (
        ("billing-usage-recorded", "generation", "usage_recorded", generation_events.UsageRecorded,
         billing.settle_usage),
        ("billing-generation-delivered", "stories", "generation_delivered",
         stories_events.GenerationDelivered, billing.count_delivered),
        ("billing-generation-discarded", "stories", "generation_discarded",
         stories_events.GenerationDiscarded, billing.release_discarded),
        ("billing-user-registered", "users", "user_registered", users_events.UserRegistered,
         billing.open_registered_account),
    )
    # Each handler takes a fetched batch of events and applies it in one transaction.
    for durable, domain, event, message_type, batch_handler in consumed:
        app.add_worker(
            EventConsumer(
                db=db,
                bus=bus,
                processed=processed_events,
                service=SERVICE,
                durable=durable,
                subject=subject_for(settings, domain, event),
                message_type=message_type,
                batch_handler=batch_handler,
            )
        )
    # Rare, and it may call Stripe: one event per transaction.
    app.add_worker(
        EventConsumer(
            db=db,
            bus=bus,
            processed=processed_events,
            service=SERVICE,
            durable="billing-user-deleted",
            subject=subject_for(settings, "users", "user_deleted"),
            message_type=users_events.UserDeleted,
            handler=subscriptions.forget_user,
        )
    )
    app.add_worker(inbox)
    app.add_worker(OutboxRelay(db, outbox, bus, SERVICE, settings))
    # Expiry asks generation's durable record before giving any quota back.
    generation_channel = open_channel(settings.generation_addr, settings.grpc_deadline_seconds)
    records = GenerationRecords(generation_pb2_grpc.GenerationServiceStub(generation_channel))
    app.add_worker(
        ReservationExpiryWorker(db, billing, records, settings.reservation_sweep_seconds)
    )
    # Workers have stopped by the time these run (GrpcApp's shutdown order).
    app.on_shutdown(generation_channel.close)
    app.on_shutdown(bus.close)
    app.on_shutdown(db.dispose)
    # Health: NOT_SERVING while the database is down; NATS down is reported
    # only (events wait in the outbox or the stream).
    app.watch_dependency(POSTGRES, db.ping)
    app.watch_dependency(NATS, bus.ping, required=False)
    return app
