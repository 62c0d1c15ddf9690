"""Wiring of the billing process."""

from __future__ import annotations

from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.generation.v1 import events_pb2 as generation_events
from fabula.users.v1 import events_pb2 as users_events
from fabula_billing.expiry import ReservationExpiryWorker
from fabula_billing.models import processed_events
from fabula_billing.service import BillingService
from fabula_billing.servicer import BillingServicer
from fabula_billing.settings import Settings
from fabula_common.consumer import EventConsumer
from fabula_common.db import Database
from fabula_common.events import EventBus, subject_for
from fabula_common.grpc_server import GrpcApp

SERVICE = "billing"


def create_app(settings: Settings) -> GrpcApp:
    app = GrpcApp(SERVICE, settings)
    db = Database(settings)
    bus = EventBus(settings, name=SERVICE)
    billing = BillingService(settings)

    app.add_servicer(
        billing_pb2_grpc.add_BillingServiceServicer_to_server,
        BillingServicer(db, billing),
        billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name,
    )
    app.add_worker(
        EventConsumer(
            db=db,
            bus=bus,
            processed=processed_events,
            service=SERVICE,
            durable="billing-usage-recorded",
            subject=subject_for(settings, "generation", "usage_recorded"),
            message_type=generation_events.UsageRecorded,
            handler=billing.settle_usage,
        )
    )
    app.add_worker(
        EventConsumer(
            db=db,
            bus=bus,
            processed=processed_events,
            service=SERVICE,
            durable="billing-user-registered",
            subject=subject_for(settings, "users", "user_registered"),
            message_type=users_events.UserRegistered,
            handler=billing.open_registered_account,
        )
    )
    app.add_worker(ReservationExpiryWorker(db, billing, settings.reservation_sweep_seconds))
    # Workers have stopped by the time these run (GrpcApp's shutdown order).
    app.on_shutdown(bus.close)
    app.on_shutdown(db.dispose)
    return app
