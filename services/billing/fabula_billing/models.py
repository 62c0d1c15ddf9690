"""Every table of the `billing` schema, the shared ones and each domain's, in one
metadata: Alembic and the migration test read it from here. A new domain adds
its models' import below."""

from __future__ import annotations

from fabula_billing.database import Base, outbox, processed_events
from fabula_billing.subscriptions.models import (
    PlanChange,
    StripeCustomer,
    StripeEvent,
    StripeInvoice,
    StripeSubscription,
)
from fabula_billing.usage.models import Account, Reservation, UsageLedgerEntry

__all__ = [
    "Account",
    "Base",
    "PlanChange",
    "Reservation",
    "StripeCustomer",
    "StripeEvent",
    "StripeInvoice",
    "StripeSubscription",
    "UsageLedgerEntry",
    "outbox",
    "processed_events",
]
