"""Stripe's side of billing (schema `billing`): customers, subscriptions and
invoices as Stripe last told us, the webhook inbox, and the plan changes."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fabula_billing.database import Base

# Subscription statuses under which the subscribed plan applies. past_due
# keeps it while Stripe retries the payment.
LIVE_STATUSES = ("active", "trialing", "past_due")


class StripeCustomer(Base):
    """One Stripe customer per user, created on the first checkout."""

    __tablename__ = "stripe_customers"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class StripeSubscription(Base):
    """A subscription as Stripe answered when we last read it."""

    __tablename__ = "stripe_subscriptions"
    __table_args__ = (Index("ix_stripe_subscriptions_user_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    customer_id: Mapped[str] = mapped_column(String(255))
    # The plan its price buys; None for a price not configured here.
    plan: Mapped[str | None] = mapped_column(String(32))
    price_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    current_period_start: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    current_period_end: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Stripe's `created`: the newest live subscription decides the plan.
    stripe_created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    synced_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class StripeInvoice(Base):
    """An invoice as known from webhooks; a newer event's copy wins, and a
    paid invoice never goes back to open."""

    __tablename__ = "stripe_invoices"
    __table_args__ = (Index("ix_stripe_invoices_user_id_created", "user_id", "created", "id"),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    number: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    amount_paid: Mapped[int] = mapped_column(BigInteger)
    amount_due: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    hosted_invoice_url: Mapped[str | None] = mapped_column(Text)
    period_start: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # `created` of the event this copy came from (out-of-order deliveries).
    event_created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class StripeEvent(Base):
    """The webhook inbox, keyed by Stripe's event id: stored before it is
    handled, so a delivery is never lost and a duplicate has no effect."""

    __tablename__ = "stripe_events"
    __table_args__ = (
        # The worker's scan: events neither handled nor parked, due first.
        Index(
            "ix_stripe_events_due",
            "next_attempt_at",
            postgresql_where=text("handled_at IS NULL AND parked_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict] = mapped_column(JSONB)
    # Stripe's `created` of the event.
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    handled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    # Set after too many failed attempts: waits for an operator's replay.
    parked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class PlanChange(Base):
    """Every change of a user's plan, with who or what made it and why."""

    __tablename__ = "plan_changes"
    __table_args__ = (Index("ix_plan_changes_user_id_changed_at", "user_id", "changed_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    previous_plan: Mapped[str] = mapped_column(String(32))
    plan: Mapped[str] = mapped_column(String(32))
    # "stripe" (a subscription's state), "manual" (SetPlan) or "default".
    source: Mapped[str] = mapped_column(String(16))
    # The subscription's id, or the actor who set the plan by hand.
    reference: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, server_default=text("''"))
    changed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
