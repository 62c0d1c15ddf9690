"""Queries of the subscriptions domain. Each takes the caller's session and
never commits."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import and_, func, not_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_billing.subscriptions.models import (
    LIVE_STATUSES,
    PlanChange,
    StripeCustomer,
    StripeEvent,
    StripeInvoice,
    StripeSubscription,
)
from fabula_billing.subscriptions.stripe_api import InvoiceState, SubscriptionState
from fabula_billing.usage.models import Account

# An invoice in one of these never goes back to draft or open.
FINAL_INVOICE_STATUSES = ("paid", "void", "uncollectible")


async def customer_of(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    return await session.scalar(
        select(StripeCustomer.customer_id).where(StripeCustomer.user_id == user_id)
    )


async def user_of_customer(session: AsyncSession, customer_id: str) -> uuid.UUID | None:
    return await session.scalar(
        select(StripeCustomer.user_id).where(StripeCustomer.customer_id == customer_id)
    )


async def link_customer(session: AsyncSession, user_id: uuid.UUID, customer_id: str) -> str:
    """Record the user's customer unless one is recorded; the recorded one."""
    await session.execute(
        insert(StripeCustomer)
        .values(user_id=user_id, customer_id=customer_id)
        .on_conflict_do_nothing()
    )
    return await customer_of(session, user_id) or customer_id


async def lock_subscription_id(session: AsyncSession, subscription_id: str) -> None:
    """Serialise the handling of one subscription until the transaction ends:
    a read from Stripe is written before the next handler reads again."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"stripe-subscription:{subscription_id}"},
    )


async def save_subscription(
    session: AsyncSession, state: SubscriptionState, user_id: uuid.UUID, plan: str | None
) -> None:
    values = {
        "user_id": user_id,
        "customer_id": state.customer_id,
        "plan": plan,
        "price_id": state.price_id,
        "status": state.status,
        "current_period_start": state.current_period_start,
        "current_period_end": state.current_period_end,
        "cancel_at_period_end": state.cancel_at_period_end,
        "stripe_created_at": state.created,
        "synced_at": func.now(),
    }
    statement = insert(StripeSubscription).values(id=state.id, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=[StripeSubscription.id], set_=values)
    )


async def live_subscription(session: AsyncSession, user_id: uuid.UUID) -> StripeSubscription | None:
    """The newest subscription of the user under which its plan applies."""
    return await session.scalar(
        select(StripeSubscription)
        .where(
            StripeSubscription.user_id == user_id,
            StripeSubscription.status.in_(LIVE_STATUSES),
            StripeSubscription.plan.is_not(None),
        )
        .order_by(StripeSubscription.stripe_created_at.desc())
        .limit(1)
        # Rows change under the session (upserts): never the stale copy.
        .execution_options(populate_existing=True)
    )


async def latest_subscription(
    session: AsyncSession, user_id: uuid.UUID
) -> StripeSubscription | None:
    """The live one if any, else the newest one."""
    live = await live_subscription(session, user_id)
    if live is not None:
        return live
    return await session.scalar(
        select(StripeSubscription)
        .where(StripeSubscription.user_id == user_id)
        .order_by(StripeSubscription.stripe_created_at.desc())
        .limit(1)
        # Rows change under the session (upserts): never the stale copy.
        .execution_options(populate_existing=True)
    )


async def save_invoice(
    session: AsyncSession, invoice: InvoiceState, user_id: uuid.UUID, event_created: dt.datetime
) -> None:
    """Insert the invoice, or update it from a newer event; a final status
    (paid, void, uncollectible) is never replaced by an earlier one."""
    values: dict[str, Any] = {
        "user_id": user_id,
        "subscription_id": invoice.subscription_id,
        "number": invoice.number,
        "status": invoice.status,
        "amount_paid": invoice.amount_paid,
        "amount_due": invoice.amount_due,
        "currency": invoice.currency,
        "hosted_invoice_url": invoice.hosted_invoice_url,
        "period_start": invoice.period_start,
        "period_end": invoice.period_end,
        "created": invoice.created,
        "event_created": event_created,
    }
    statement = insert(StripeInvoice).values(id=invoice.id, **values)
    newer = statement.excluded.event_created >= StripeInvoice.event_created
    would_reopen = and_(
        StripeInvoice.status.in_(FINAL_INVOICE_STATUSES),
        not_(statement.excluded.status.in_(FINAL_INVOICE_STATUSES)),
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[StripeInvoice.id],
            set_={name: statement.excluded[name] for name in values},
            where=and_(newer, not_(would_reopen)),
        )
    )


async def list_invoices(
    session: AsyncSession,
    user_id: uuid.UUID,
    limit: int,
    after: tuple[dt.datetime, str] | None,
) -> list[StripeInvoice]:
    """Newest first; `after` is the (created, id) of the previous page's last."""
    query = select(StripeInvoice).where(StripeInvoice.user_id == user_id)
    if after is not None:
        created, invoice_id = after
        query = query.where(
            or_(
                StripeInvoice.created < created,
                and_(StripeInvoice.created == created, StripeInvoice.id < invoice_id),
            )
        )
    query = query.order_by(StripeInvoice.created.desc(), StripeInvoice.id.desc()).limit(limit)
    return list(await session.scalars(query))


async def lock_account(session: AsyncSession, user_id: uuid.UUID) -> Account | None:
    return await session.scalar(
        select(Account)
        .where(Account.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def set_account_plan(
    session: AsyncSession,
    user_id: uuid.UUID,
    plan: str,
    period_start: dt.datetime,
    period_end: dt.datetime,
    *,
    new_period: bool,
) -> None:
    """Put the account on `plan` for [period_start, period_end). A new period
    starts from zero usage; otherwise what was used stays. Holds stay either
    way (they track reservations still outstanding)."""
    values: dict[str, Any] = {
        "plan": plan,
        "period_start": period_start,
        "period_end": period_end,
        "updated_at": func.now(),
    }
    if new_period:
        values.update(generations_used=0, cost_used_usd=0)
    await session.execute(update(Account).where(Account.user_id == user_id).values(**values))


async def last_plan_change(session: AsyncSession, user_id: uuid.UUID) -> PlanChange | None:
    return await session.scalar(
        select(PlanChange)
        .where(PlanChange.user_id == user_id)
        .order_by(PlanChange.id.desc())
        .limit(1)
    )


async def record_plan_change(
    session: AsyncSession,
    user_id: uuid.UUID,
    previous_plan: str,
    plan: str,
    source: str,
    reference: str,
    reason: str,
) -> None:
    session.add(
        PlanChange(
            user_id=user_id,
            previous_plan=previous_plan,
            plan=plan,
            source=source,
            reference=reference,
            reason=reason,
        )
    )
    await session.flush()


# The webhook inbox.


async def store_event(
    session: AsyncSession, event_id: str, event_type: str, payload: dict, created: dt.datetime
) -> bool:
    """Store a delivered event; False when its id was stored before."""
    stored = await session.scalar(
        insert(StripeEvent)
        .values(id=event_id, type=event_type, payload=payload, created=created)
        .on_conflict_do_nothing()
        .returning(StripeEvent.id)
    )
    return stored is not None


async def claim_due_event(session: AsyncSession, now: dt.datetime) -> StripeEvent | None:
    """The oldest event due for handling, locked; another worker skips it."""
    return await session.scalar(
        select(StripeEvent)
        .where(
            StripeEvent.handled_at.is_(None),
            StripeEvent.parked_at.is_(None),
            StripeEvent.next_attempt_at <= now,
        )
        .order_by(StripeEvent.created, StripeEvent.received_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


async def next_due_at(session: AsyncSession) -> dt.datetime | None:
    return await session.scalar(
        select(func.min(StripeEvent.next_attempt_at)).where(
            StripeEvent.handled_at.is_(None), StripeEvent.parked_at.is_(None)
        )
    )


async def mark_event_handled(session: AsyncSession, event_id: str, now: dt.datetime) -> None:
    await session.execute(
        update(StripeEvent)
        .where(StripeEvent.id == event_id)
        .values(handled_at=now, last_error=None)
    )


async def record_event_failure(
    session: AsyncSession,
    event_id: str,
    error: str,
    next_attempt_at: dt.datetime,
    parked_at: dt.datetime | None,
) -> None:
    await session.execute(
        update(StripeEvent)
        .where(StripeEvent.id == event_id)
        .values(
            attempts=StripeEvent.attempts + 1,
            last_error=error[:2000],
            next_attempt_at=next_attempt_at,
            parked_at=parked_at,
        )
    )


async def failed_events(session: AsyncSession, limit: int) -> list[StripeEvent]:
    """Events not handled that failed at least once (parked ones included)."""
    return list(
        await session.scalars(
            select(StripeEvent)
            .where(StripeEvent.handled_at.is_(None), StripeEvent.attempts > 0)
            .order_by(StripeEvent.created)
            .limit(limit)
        )
    )


async def replay_events(session: AsyncSession, event_ids: list[str] | None) -> list[str]:
    """Make failed events (these ids, or every parked one) due now with fresh
    attempts; the ids made due."""
    query = update(StripeEvent).where(StripeEvent.handled_at.is_(None))
    if event_ids is None:
        query = query.where(StripeEvent.parked_at.is_not(None))
    else:
        query = query.where(StripeEvent.id.in_(event_ids))
    replayed = await session.scalars(
        query.values(attempts=0, parked_at=None, next_attempt_at=func.now()).returning(
            StripeEvent.id
        )
    )
    return list(replayed)
