"""Stripe through its official SDK (StripeClient): the calls billing makes,
each with a deadline, Stripe's errors turned into ours, answers as plain dicts.

Why the SDK and not HTTP by hand: it owns the wire format (form encoding of
nested parameters, API versions, idempotency keys on retries) and the
webhook signature scheme, which are easy to get subtly wrong.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import stripe
from fabula_common.errors import (
    FabulaError,
    InvalidArgument,
    PaymentProviderUnavailable,
    PaymentsNotConfigured,
    WebhookSignatureInvalid,
)

from fabula_billing.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class StripeNotFound(FabulaError):
    """Stripe has no such object."""


def _timestamp(value: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(value), dt.UTC) if value else None


def object_id(value: Any) -> str | None:
    """An expandable field: an id, or the expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None


@dataclass(frozen=True)
class SubscriptionState:
    """What billing keeps of a Stripe subscription."""

    id: str
    customer_id: str
    status: str
    price_id: str | None
    current_period_start: dt.datetime | None
    current_period_end: dt.datetime | None
    cancel_at_period_end: bool
    created: dt.datetime
    metadata_user_id: str | None

    @classmethod
    def from_stripe(cls, subscription: dict[str, Any]) -> SubscriptionState:
        items = (subscription.get("items") or {}).get("data") or []
        item = items[0] if items else {}
        price = item.get("price") or subscription.get("plan") or {}
        # Recent API versions keep the period on each item; older ones on the
        # subscription itself. Accept both.
        start = item.get("current_period_start") or subscription.get("current_period_start")
        end = item.get("current_period_end") or subscription.get("current_period_end")
        return cls(
            id=subscription["id"],
            customer_id=object_id(subscription.get("customer")) or "",
            status=subscription.get("status") or "incomplete",
            price_id=object_id(price),
            current_period_start=_timestamp(start),
            current_period_end=_timestamp(end),
            cancel_at_period_end=bool(subscription.get("cancel_at_period_end")),
            created=_timestamp(subscription.get("created")) or dt.datetime.now(dt.UTC),
            metadata_user_id=(subscription.get("metadata") or {}).get("user_id"),
        )


@dataclass(frozen=True)
class InvoiceState:
    id: str
    customer_id: str | None
    subscription_id: str | None
    number: str | None
    status: str
    amount_paid: int
    amount_due: int
    currency: str
    hosted_invoice_url: str | None
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    created: dt.datetime

    @classmethod
    def from_stripe(cls, invoice: dict[str, Any]) -> InvoiceState:
        # Recent API versions name the subscription under parent; older ones
        # on the invoice.
        parent = (invoice.get("parent") or {}).get("subscription_details") or {}
        subscription = object_id(parent.get("subscription")) or object_id(
            invoice.get("subscription")
        )
        lines = (invoice.get("lines") or {}).get("data") or []
        line_period = (lines[0].get("period") or {}) if lines else {}
        return cls(
            id=invoice["id"],
            customer_id=object_id(invoice.get("customer")),
            subscription_id=subscription,
            number=invoice.get("number"),
            status=invoice.get("status") or "draft",
            amount_paid=int(invoice.get("amount_paid") or 0),
            amount_due=int(invoice.get("amount_due") or 0),
            currency=invoice.get("currency") or "usd",
            hosted_invoice_url=invoice.get("hosted_invoice_url"),
            period_start=_timestamp(line_period.get("start") or invoice.get("period_start")),
            period_end=_timestamp(line_period.get("end") or invoice.get("period_end")),
            created=_timestamp(invoice.get("created")) or dt.datetime.now(dt.UTC),
        )


class StripeApi:
    """The Stripe calls billing makes. `configured` is False without an API
    key; every call then raises PaymentsNotConfigured."""

    def __init__(self, settings: Settings) -> None:
        self.timeout = settings.stripe_timeout_seconds
        self.tolerance = settings.stripe_webhook_tolerance_seconds
        self._webhook_secret = (
            settings.stripe_webhook_secret.get_secret_value()
            if settings.stripe_webhook_secret
            else None
        )
        self._client: stripe.StripeClient | None = None
        if settings.stripe_api_key is not None:
            self._client = stripe.StripeClient(
                settings.stripe_api_key.get_secret_value(),
                base_addresses={"api": settings.stripe_api_base},
                http_client=stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds),
                # One retry of a connection error or 5xx; the SDK adds an
                # idempotency key to retried POSTs.
                max_network_retries=1,
            )

    @property
    def configured(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> stripe.StripeClient:
        if self._client is None:
            raise PaymentsNotConfigured("payments are not configured (no STRIPE_API_KEY)")
        return self._client

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            # The SDK's timeout bounds each HTTP attempt; this bounds the retry too.
            async with asyncio.timeout(self.timeout * 2 + 1):
                return await call()
        except TimeoutError:
            raise PaymentProviderUnavailable(f"Stripe did not answer {what} in time") from None
        except stripe.InvalidRequestError as error:
            if error.http_status == 404:
                raise StripeNotFound(f"Stripe: {error.user_message or error}") from None
            # Our request was wrong: an operator's configuration (a price id), not the user's.
            log.error("Stripe refused %s: %s", what, error)
            raise FabulaError(f"Stripe refused {what}") from None
        except (stripe.AuthenticationError, stripe.PermissionError) as error:
            log.error("Stripe refused our API key for %s: %s", what, error)
            raise PaymentProviderUnavailable("the payment provider refused billing's key") from None
        except stripe.StripeError as error:
            log.warning("Stripe failed %s: %s", what, error)
            raise PaymentProviderUnavailable(f"Stripe failed {what}; retry later") from None

    async def create_customer(self, user_id: str, email: str) -> str:
        params: dict[str, Any] = {"metadata": {"user_id": user_id}}
        if email:
            params["email"] = email
        customer = await self._call(
            "creating a customer",
            # The same key for every attempt of this user: concurrent
            # checkouts get one customer from Stripe, not two.
            lambda: self.client.v1.customers.create_async(
                params, {"idempotency_key": f"fabula-customer-{user_id}"}
            ),
        )
        return customer.id

    async def create_checkout_session(
        self,
        *,
        user_id: str,
        customer_id: str,
        plan: str,
        price_id: str,
        success_url: str,
        cancel_url: str,
    ) -> tuple[str, str]:
        metadata = {"user_id": user_id, "plan": plan}
        session = await self._call(
            "creating a checkout session",
            lambda: self.client.v1.checkout.sessions.create_async(
                {
                    "mode": "subscription",
                    "customer": customer_id,
                    "client_reference_id": user_id,
                    "metadata": metadata,
                    "line_items": [{"price": price_id, "quantity": 1}],
                    "subscription_data": {"metadata": metadata},
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                }
            ),
        )
        return session.id, session.url

    async def create_portal_session(self, customer_id: str, return_url: str) -> str:
        portal = await self._call(
            "creating a portal session",
            lambda: self.client.v1.billing_portal.sessions.create_async(
                {"customer": customer_id, "return_url": return_url}
            ),
        )
        return portal.url

    async def retrieve_subscription(self, subscription_id: str) -> SubscriptionState:
        subscription = await self._call(
            "reading a subscription",
            lambda: self.client.v1.subscriptions.retrieve_async(subscription_id),
        )
        return SubscriptionState.from_stripe(subscription.to_dict())

    async def set_cancel_at_period_end(self, subscription_id: str, cancel: bool) -> SubscriptionState:
        subscription = await self._call(
            "updating a subscription",
            lambda: self.client.v1.subscriptions.update_async(
                subscription_id, {"cancel_at_period_end": cancel}
            ),
        )
        return SubscriptionState.from_stripe(subscription.to_dict())

    async def cancel_subscription(self, subscription_id: str) -> None:
        """Cancel now (not at the period's end); one already cancelled is fine."""
        try:
            await self._call(
                "cancelling a subscription",
                lambda: self.client.v1.subscriptions.cancel_async(subscription_id),
            )
        except StripeNotFound:
            log.info("subscription %s to cancel no longer exists in Stripe", subscription_id)

    def verified_event(self, payload: bytes, signature: str) -> dict[str, Any]:
        """The event a webhook delivered, once its Stripe-Signature is checked
        against the webhook secret (within the tolerance)."""
        if self._webhook_secret is None:
            raise PaymentsNotConfigured("webhooks are not configured (no STRIPE_WEBHOOK_SECRET)")
        try:
            stripe.WebhookSignature.verify_header(
                payload.decode("utf-8"), signature, self._webhook_secret, self.tolerance
            )
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            raise WebhookSignatureInvalid("the Stripe-Signature header does not verify") from None
        try:
            event = json.loads(payload)
        except ValueError:
            raise InvalidArgument("the webhook body is not JSON") from None
        if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
            raise InvalidArgument("the webhook body is not a Stripe event")
        return event
