"""Subscriptions through Stripe, and the plan they put an account on.

Stripe is the source of truth for a subscription. Webhook events only say
*that* something changed: a subscription is read again from Stripe whenever
an event names it, so events arriving twice, late or out of order (an
`updated` before its `created`) always leave the state Stripe has now.

The plan an account is on follows from its subscriptions: the newest one
that is active, trialing or past_due (Stripe still retrying the payment)
sets its plan and the quota period to the subscription's current period;
with none, the account returns to the default plan and calendar months. A
plan set by hand (SetPlan) stays until a subscription goes live.

Every method takes the caller's session and never commits.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from fabula.billing.v1 import events_pb2
from fabula.users.v1 import events_pb2 as users_events
from fabula_common.db import utcnow
from fabula_common.errors import (
    AlreadySubscribed,
    InvalidArgument,
    NoSubscription,
    PaymentsNotConfigured,
)
from fabula_common.messaging.outbox import enqueue
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_billing.database import outbox
from fabula_billing.leaving.service import forget_user
from fabula_billing.settings import Settings
from fabula_billing.subscriptions import repository as repo
from fabula_billing.subscriptions.models import StripeInvoice, StripeSubscription
from fabula_billing.subscriptions.stripe_api import (
    InvoiceState,
    StripeApi,
    StripeNotFound,
    SubscriptionState,
    object_id,
)
from fabula_billing.usage.service import BillingService, optional_uuid, period_containing

log = logging.getLogger(__name__)

SOURCE_STRIPE = "stripe"
SOURCE_MANUAL = "manual"


@dataclass(frozen=True)
class SubscriptionView:
    plan: str
    status: str  # "none" without a subscription
    current_period_start: dt.datetime | None = None
    current_period_end: dt.datetime | None = None
    cancel_at_period_end: bool = False
    subscription_id: str = ""
    subscribed_plan: str = ""


class SubscriptionService:
    def __init__(
        self, settings: Settings, stripe: StripeApi, billing: BillingService, plan_subject: str
    ) -> None:
        self.stripe = stripe
        self.billing = billing
        self.prices = settings.stripe_prices()
        self.plan_of_price = {price: plan for plan, price in self.prices.items()}
        self.default_plan = settings.default_plan
        self.plans = settings.plans
        self.plan_subject = plan_subject
        self.success_url = settings.checkout_success_url
        self.cancel_url = settings.checkout_cancel_url
        self.portal_return_url = settings.portal_return_url

    # What a user asks for.

    async def checkout(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        plan: str,
        *,
        success_url: str = "",
        cancel_url: str = "",
        email: str = "",
    ) -> tuple[str, str]:
        """(session id, checkout URL) of a Stripe Checkout for `plan`."""
        self.stripe.client  # noqa: B018 - PaymentsNotConfigured before anything else
        price = self.prices.get(plan)
        if price is None:
            raise InvalidArgument(
                f"plan must be one of {sorted(self.prices)}", metadata={"plan": plan}
            )
        live = await repo.live_subscription(session, user_id)
        if live is not None:
            raise AlreadySubscribed(
                f"already subscribed to {live.plan} ({live.status}); change or cancel it "
                "in the customer portal",
                metadata={"subscription_id": live.id},
            )
        customer = await repo.customer_of(session, user_id)
        if customer is None:
            created = await self.stripe.create_customer(str(user_id), email)
            customer = await repo.link_customer(session, user_id, created)
        return await self.stripe.create_checkout_session(
            user_id=str(user_id),
            customer_id=customer,
            plan=plan,
            price_id=price,
            success_url=success_url or self.success_url,
            cancel_url=cancel_url or self.cancel_url,
        )

    async def portal(self, session: AsyncSession, user_id: uuid.UUID, return_url: str = "") -> str:
        self.stripe.client  # noqa: B018
        customer = await repo.customer_of(session, user_id)
        if customer is None:
            raise NoSubscription("no billing account yet: check out a plan first")
        return await self.stripe.create_portal_session(customer, return_url or self.portal_return_url)

    async def subscription(self, session: AsyncSession, user_id: uuid.UUID) -> SubscriptionView:
        usage = await self.billing.get_usage(session, user_id)
        latest = await repo.latest_subscription(session, user_id)
        if latest is None:
            return SubscriptionView(plan=usage.plan_name, status="none")
        return _view(usage.plan_name, latest)

    async def set_cancel_at_period_end(
        self, session: AsyncSession, user_id: uuid.UUID, cancel: bool
    ) -> SubscriptionView:
        """Cancel at the period's end (or undo that) in Stripe, then record
        what Stripe answered; its webhook, when it comes, changes nothing more."""
        self.stripe.client  # noqa: B018
        live = await repo.live_subscription(session, user_id)
        if live is None:
            raise NoSubscription("no active subscription")
        await repo.lock_subscription_id(session, live.id)
        state = await self.stripe.set_cancel_at_period_end(live.id, cancel)
        await self._save_subscription(session, state, user_id)
        return await self.subscription(session, user_id)

    async def set_plan(
        self, session: AsyncSession, user_id: uuid.UUID, plan: str, actor: str, reason: str
    ) -> None:
        if plan not in self.plans:
            raise InvalidArgument(
                f"plan must be one of {sorted(self.plans)}", reason="unknown-plan",
                metadata={"plan": plan},
            )
        if not actor.strip():
            raise InvalidArgument("actor is required: who sets the plan")
        account = await self._locked_account(session, user_id)
        now = utcnow()
        period = _period_around(account.period_start, account.period_end, now)
        await self._put_on_plan(session, account, plan, period, SOURCE_MANUAL, actor, reason)

    async def invoices(
        self, session: AsyncSession, user_id: uuid.UUID, limit: int, after: Any
    ) -> list[StripeInvoice]:
        return await repo.list_invoices(session, user_id, limit, after)

    # Leaving.

    async def forget_user(self, session: AsyncSession, event: users_events.UserDeleted) -> None:
        """The UserDeleted handler: a live subscription is cancelled in Stripe
        at once (the user is gone: nothing more is charged), then every
        payment record naming the user is deleted (Stripe keeps the invoices
        themselves), then usage is anonymised (leaving.forget_user)."""
        user_id = optional_uuid(event.user_id)
        if user_id is not None:
            live = await repo.live_subscription(session, user_id)
            if live is not None:
                if not self.stripe.configured:
                    # Retried (redelivered) until an operator configures Stripe.
                    raise PaymentsNotConfigured(
                        f"subscription {live.id} of a deleted user cannot be cancelled"
                    )
                await self.stripe.cancel_subscription(live.id)
            await repo.forget_payments(session, user_id)
        await forget_user(session, event)

    # Webhooks.

    async def receive_event(
        self, session: AsyncSession, payload: bytes, signature: str
    ) -> tuple[str, bool]:
        """Verify and store a delivery: (event id, whether it was a duplicate)."""
        event = self.stripe.verified_event(payload, signature)
        created = dt.datetime.fromtimestamp(int(event.get("created") or 0), dt.UTC)
        stored = await repo.store_event(session, event["id"], event["type"], event, created)
        return event["id"], not stored

    async def handle_event(self, session: AsyncSession, event: dict[str, Any]) -> None:
        """Apply one stored event. Raises when it should be tried again later."""
        kind = event["type"]
        item = (event.get("data") or {}).get("object") or {}
        created = dt.datetime.fromtimestamp(int(event.get("created") or 0), dt.UTC)
        if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            user_id = optional_uuid(item.get("client_reference_id")) or optional_uuid(
                (item.get("metadata") or {}).get("user_id")
            )
            customer = object_id(item.get("customer"))
            if user_id is not None and customer:
                await repo.link_customer(session, user_id, customer)
            subscription = object_id(item.get("subscription"))
            if subscription:
                await self._sync_subscription(session, subscription, user_hint=user_id)
        elif kind.startswith("customer.subscription."):
            await self._sync_subscription(session, item["id"], fallback=item)
        elif kind.startswith("invoice."):
            await self._record_invoice(session, InvoiceState.from_stripe(item), created)
        else:
            log.debug("Stripe event %s of type %s ignored", event.get("id"), kind)

    async def _record_invoice(
        self, session: AsyncSession, invoice: InvoiceState, event_created: dt.datetime
    ) -> None:
        user_id = await repo.user_of_customer(session, invoice.customer_id or "")
        if user_id is None:
            log.warning("invoice %s of unknown customer %s ignored", invoice.id, invoice.customer_id)
            return
        await repo.save_invoice(session, invoice, user_id, event_created)
        if invoice.subscription_id:
            # A failed payment makes the subscription past_due, a paid one may
            # renew it: its state is Stripe's to say.
            await self._sync_subscription(session, invoice.subscription_id, user_hint=user_id)

    async def _sync_subscription(
        self,
        session: AsyncSession,
        subscription_id: str,
        *,
        user_hint: uuid.UUID | None = None,
        fallback: dict[str, Any] | None = None,
    ) -> None:
        """Read the subscription from Stripe and apply what it says now."""
        await repo.lock_subscription_id(session, subscription_id)
        try:
            state = await self.stripe.retrieve_subscription(subscription_id)
        except StripeNotFound:
            if fallback is None:
                log.warning("subscription %s no longer exists in Stripe", subscription_id)
                return
            state = SubscriptionState.from_stripe(fallback)
        user_id = (
            optional_uuid(state.metadata_user_id)
            or await repo.user_of_customer(session, state.customer_id)
            or user_hint
        )
        if user_id is None:
            log.warning(
                "subscription %s of unknown customer %s ignored", state.id, state.customer_id
            )
            return
        await self._save_subscription(session, state, user_id)

    async def _save_subscription(
        self, session: AsyncSession, state: SubscriptionState, user_id: uuid.UUID
    ) -> None:
        plan = self.plan_of_price.get(state.price_id or "")
        if plan is None:
            log.error(
                "subscription %s has price %s, which no STRIPE_PRICE_* names: it sets no plan",
                state.id,
                state.price_id,
            )
        await repo.save_subscription(session, state, user_id, plan)
        await self._follow_subscriptions(session, user_id, f"subscription {state.status}")

    async def _follow_subscriptions(
        self, session: AsyncSession, user_id: uuid.UUID, reason: str
    ) -> None:
        """Put the account on the plan its subscriptions say."""
        account = await self._locked_account(session, user_id)
        now = utcnow()
        live = await repo.live_subscription(session, user_id)
        if live is not None:
            assert live.plan is not None
            if (
                live.current_period_start is not None
                and live.current_period_end is not None
                and live.current_period_start <= now < live.current_period_end
            ):
                period = (live.current_period_start, live.current_period_end)
            else:
                # Renewal not heard of yet: keep counting in the current period.
                period = _period_around(account.period_start, account.period_end, now)
            await self._put_on_plan(session, account, live.plan, period, SOURCE_STRIPE, live.id, reason)
            return
        last = await repo.last_plan_change(session, user_id)
        if last is None or last.source != SOURCE_STRIPE:
            return  # never subscribed, or set by hand since: not Stripe's to undo
        await self._put_on_plan(
            session, account, self.default_plan, period_containing(now), SOURCE_STRIPE,
            last.reference, reason,
        )

    async def _locked_account(self, session: AsyncSession, user_id: uuid.UUID):
        await self.billing.open_account(session, user_id)
        account = await repo.lock_account(session, user_id)
        assert account is not None  # opened above; accounts are never deleted
        return account

    async def _put_on_plan(
        self,
        session: AsyncSession,
        account,
        plan: str,
        period: tuple[dt.datetime, dt.datetime],
        source: str,
        reference: str,
        reason: str,
    ) -> None:
        start, end = period
        previous_plan = account.plan  # read before the update refreshes `account`
        # Usage starts from zero only when the old period is over. Otherwise
        # what was used stays (an upgrade only raises the limit) and so does
        # the period's start, so the period still holds every ledger entry
        # its counters add up; only its end moves.
        new_period = account.period_end <= start or account.period_end <= utcnow()
        if not new_period:
            start = account.period_start
        if (previous_plan, account.period_start, account.period_end) == (plan, start, end):
            return
        await repo.set_account_plan(session, account.user_id, plan, start, end, new_period=new_period)
        if previous_plan == plan:
            return
        await repo.record_plan_change(
            session, account.user_id, previous_plan, plan, source, reference, reason
        )
        now = utcnow()
        await enqueue(
            session,
            outbox,
            self.plan_subject,
            events_pb2.PlanChanged(
                event_id=str(uuid.uuid4()),
                user_id=str(account.user_id),
                previous_plan=previous_plan,
                plan=plan,
                source=source,
                reference=reference,
                period_start=start,
                period_end=end,
                occurred_at=now,
            ),
        )
        log.info("user %s moved from plan %s to %s (%s %s)", account.user_id, previous_plan,
                 plan, source, reference)


def _period_around(
    start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """The account's period when it holds `now`, else the calendar month."""
    return (start, end) if start <= now < end else period_containing(now)


def _view(plan: str, subscription: StripeSubscription) -> SubscriptionView:
    return SubscriptionView(
        plan=plan,
        status=subscription.status,
        current_period_start=subscription.current_period_start,
        current_period_end=subscription.current_period_end,
        cancel_at_period_end=subscription.cancel_at_period_end,
        subscription_id=subscription.id,
        subscribed_plan=subscription.plan or "",
    )
