"""A local stand-in for the Stripe API and its webhooks, for tests.

It speaks the wire format the official `stripe` SDK (StripeClient, API version
2026-10-28.endive) sends and parses, for what billing uses: form-encoded
requests with Stripe's nested keys (`metadata[user_id]=..`,
`line_items[0][price]=..`), `Authorization: Bearer sk_...`, `Idempotency-Key`
(the same key answers the same response), and errors shaped
`{"error": {"type", "code", "message", "param"}}`. Every state change sends the
events Stripe would, signed as Stripe signs them
(`Stripe-Signature: t=<unix>,v1=<HMAC-SHA256(secret, "<t>.<body>")>`), to the
webhook URL; a failed delivery is retried with backoff and every attempt is
recorded. It needs nothing beyond the standard library.

Run it:      python tests/fakes/fake_stripe.py --port 12111 \
                 --webhook-url URL --webhook-secret whsec_...
Import it:   async with FakeStripe(webhook_url=..., webhook_secret=...) as fake: ... fake.url ...

Stripe API (Bearer key required):
  POST /v1/customers                 GET /v1/customers/{id}
  POST /v1/checkout/sessions         GET /v1/checkout/sessions/{id}   (mode=subscription)
  POST /v1/billing_portal/sessions   GET /v1/invoices/{id}
  GET|POST|DELETE /v1/subscriptions/{id}
Shapes follow the current API version: a subscription's period lives on
items.data[0].current_period_start/_end (`legacy_period_fields=True` also puts
it at the top level, as before 2025-03-31.basil); an invoice names its
subscription in parent.subscription_details.subscription, its own
period_start/_end follow Stripe (equal to `created` on a first invoice) and the
service period is lines.data[0].period.

Pages: GET /checkout/{id} (a "Pay" form posting to the complete control, which
then redirects to success_url), /portal/{id}, /invoices/{id}.

Test controls (JSON, no auth):
  POST /_fake/checkout_sessions/{id}/complete  pay: subscription (active, or trialing with
       subscription_data[trial_period_days]) + paid invoice; customer.subscription.created,
       invoice.paid, checkout.session.completed
  POST /_fake/subscriptions/{id}/renew           the period ends: next period + paid invoice
       (customer.subscription.updated, invoice.paid); pays the open invoice of a past_due one;
       ends one set to cancel at period end (customer.subscription.deleted)
  POST /_fake/subscriptions/{id}/payment_failed  the renewal payment fails: next period, open
       invoice, past_due (customer.subscription.updated, invoice.payment_failed)
  POST /_fake/subscriptions/{id}/delete          canceled now (customer.subscription.deleted)
  POST /_fake/prices   {"id", "unit_amount", "currency"}   (price_pro 2000, price_enterprise 10000)
  POST /_fake/webhooks {"enabled": false|true, "url"?}     hold deliveries / flush them
  GET  /_fake/events      every event: id, type, payload (raw JSON), signature (header)
  GET  /_fake/deliveries  every delivery attempt       GET /_fake/requests  API requests received
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import hashlib
import hmac
import html
import json
import re
import secrets
import string
import time
from typing import Any, Self
from urllib.parse import parse_qsl, quote, urlsplit

API_VERSION = "2026-10-28.endive"
DAY = 86_400
DEFAULT_PRICES = {"price_pro": (2000, "usd"), "price_enterprise": (10000, "usd")}

_REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
_ALPHABET = string.ascii_letters + string.digits


def _id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(length))}"


class StripeError(Exception):
    """An error answered in Stripe's shape (and raised by the Python controls)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # Stripe's field name
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type, "code": code, "message": message, "param": param}}
        if code:
            self.body["error"]["doc_url"] = f"https://stripe.com/docs/error-codes/{code}"


def _missing(kind: str, object_id: str, param: str | None = None) -> StripeError:
    # A missing object named in the path is a 404; named in a parameter, a 400.
    return StripeError(
        400 if param else 404,
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param or "id",
    )


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's nested form keys as JSON-like data: `a[0][b]=1` -> {"a": [{"b": "1"}]}."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        if not parts:
            continue
        node = root
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {key: _listify(value) for key, value in node.items()}
    if node and all(key.isdigit() for key in node):
        return [node[key] for key in sorted(node, key=int)]
    return node


def _bool(params: dict[str, Any], name: str) -> bool | None:
    if name not in params:
        return None
    value = params[name]
    if value not in ("true", "false"):
        raise StripeError(400, f"Invalid boolean: {value}", param=name)
    return value == "true"


def _int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {value}", param=param) from None


def _merge_metadata(current: dict[str, str], update: Any, param: str = "metadata") -> dict:
    # Stripe: metadata="" clears it all; a key set to "" is removed.
    if update == "":
        return {}
    if not isinstance(update, dict):
        raise StripeError(400, "Invalid object", param=param)
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """previous_attributes of an *.updated event: the old value of each changed field."""
    return {key: before.get(key) for key in after if before.get(key) != after[key]}


def sign(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe would send with this exact body."""
    body = payload.decode() if isinstance(payload, bytes) else payload
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def _page(title: str, body: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


class FakeStripe:
    """The fake server. Start and stop it in the running event loop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        webhook_url: str | None = None,
        webhook_secret: str = "whsec_fake_stripe_secret",
        api_key: str | None = None,
        legacy_period_fields: bool = False,
        period_days: int = 30,
        delivery_timeout: float = 5.0,
        retry_delays: tuple[float, ...] = (0.5, 2.0, 5.0),
    ) -> None:
        self.host = host
        self.port = port
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.api_key = api_key  # None: any `sk_...` key is accepted
        self.legacy_period_fields = legacy_period_fields
        self.period_days = period_days
        self.delivery_timeout = delivery_timeout
        self.retry_delays = retry_delays
        self.webhooks_enabled = True
        self.prices: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.checkout_sessions: dict[str, dict[str, Any]] = {}
        self.portal_sessions: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []  # id, type, payload, signature, event
        self.deliveries: list[dict[str, Any]] = []  # event_id, attempt, status, error, at
        self.requests: list[dict[str, Any]] = []  # method, path, params, idempotency_key
        self._checkout_orders: dict[str, dict[str, Any]] = {}  # what each session sells
        self._idempotent: dict[str, tuple[tuple, int, dict[str, Any]]] = {}
        self._request: dict[str, Any] | None = None  # the API request being handled
        self._held: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._unsettled = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None
        for price_id, (amount, currency) in DEFAULT_PRICES.items():
            self.add_price(price_id, amount, currency)

    # -- lifecycle -----------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL to hand to the SDK as base_addresses={"api": url}."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._spawn(self._deliver_in_order())

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- Python controls for tests -------------------------------------------

    def sign(self, payload: bytes | str, secret: str | None = None, timestamp: int | None = None):
        return sign(payload, secret or self.webhook_secret, timestamp)

    def add_price(self, price_id: str, unit_amount: int, currency: str = "usd") -> dict:
        self.prices[price_id] = {
            "id": price_id, "object": "price", "active": True, "billing_scheme": "per_unit",
            "created": int(time.time()), "currency": currency, "livemode": False,
            "lookup_key": None, "metadata": {}, "nickname": None,
            "product": f"prod_{price_id.removeprefix('price_')}",
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed",
                          "meter": None, "trial_period_days": None},
            "tax_behavior": "unspecified", "type": "recurring",
            "unit_amount": unit_amount, "unit_amount_decimal": str(unit_amount),
        }  # fmt: skip
        return self.prices[price_id]

    async def complete_checkout(self, session_id: str) -> dict[str, Any]:
        return self._complete_checkout(session_id)

    async def renew(self, subscription_id: str) -> dict[str, Any]:
        return self._renew(subscription_id)

    async def fail_payment(self, subscription_id: str) -> dict[str, Any]:
        return self._fail_payment(subscription_id)

    async def delete_subscription(self, subscription_id: str) -> dict[str, Any]:
        return self._cancel_now(self._subscription(subscription_id))

    def set_webhooks(self, enabled: bool, url: str | None = None) -> None:
        """Hold deliveries (queued, in order) or deliver them, the held ones first."""
        if url is not None:
            self.webhook_url = url
        self.webhooks_enabled = enabled
        if enabled:
            held, self._held = self._held, []
            for record in held:
                self._enqueue(record)

    async def wait_for_deliveries(self, timeout: float = 30.0) -> None:
        """Until every delivery not held has succeeded or used up its retries."""
        await asyncio.wait_for(self._settled.wait(), timeout)

    # -- the objects ---------------------------------------------------------

    def _customer(self, customer_id: str, param: str | None = None) -> dict[str, Any]:
        if customer_id not in self.customers:
            raise _missing("customer", customer_id, param)
        return self.customers[customer_id]

    def _subscription(self, subscription_id: str) -> dict[str, Any]:
        if subscription_id not in self.subscriptions:
            raise _missing("subscription", subscription_id)
        return self.subscriptions[subscription_id]

    def _create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = {
            "id": _id("cus", 14), "object": "customer", "address": None, "balance": 0,
            "created": int(time.time()), "currency": None, "default_source": None,
            "delinquent": False, "description": params.get("description"), "discount": None,
            "email": params.get("email"), "invoice_prefix": secrets.token_hex(4).upper(),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                                 "footer": None, "rendering_options": None},
            "livemode": False, "metadata": _merge_metadata({}, params.get("metadata", {})),
            "name": params.get("name"), "next_invoice_sequence": 1, "phone": None,
            "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
        }  # fmt: skip
        self.customers[customer["id"]] = customer
        return customer

    def _create_checkout_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mode") != "subscription":
            raise StripeError(400, "The fake supports only mode=subscription.", param="mode")
        items = params.get("line_items")
        if not isinstance(items, list) or not items or "price" not in items[0]:
            raise StripeError(400, "Missing required param: line_items.", param="line_items")
        price = self.prices.get(items[0]["price"])
        if price is None:
            raise _missing("price", items[0]["price"], "line_items[0][price]")
        quantity = _int(items[0].get("quantity", "1"), "line_items[0][quantity]")
        if params.get("customer"):
            self._customer(params["customer"], "customer")
        subscription_data = params.get("subscription_data", {})
        trial_days = subscription_data.get("trial_period_days")
        now = int(time.time())
        session_id = _id("cs_test", 58)
        session = {
            "id": session_id, "object": "checkout.session", "allow_promotion_codes": None,
            "amount_subtotal": price["unit_amount"] * quantity,
            "amount_total": price["unit_amount"] * quantity, "billing_address_collection": None,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"), "created": now,
            "currency": price["currency"], "customer": params.get("customer"),
            "customer_creation": None if params.get("customer") else "always",
            "customer_details": None, "customer_email": params.get("customer_email"),
            "expires_at": now + DAY, "invoice": None, "livemode": False, "locale": None,
            "metadata": _merge_metadata({}, params.get("metadata", {})), "mode": "subscription",
            "payment_intent": None, "payment_method_types": ["card"], "payment_status": "unpaid",
            "status": "open", "subscription": None, "success_url": params.get("success_url"),
            "ui_mode": "hosted", "url": f"{self.url}/checkout/{session_id}",
        }  # fmt: skip
        self.checkout_sessions[session_id] = session
        self._checkout_orders[session_id] = {
            "price": price["id"],
            "quantity": quantity,
            "trial_days": None if trial_days is None else _int(trial_days, "trial_period_days"),
            "metadata": _merge_metadata({}, subscription_data.get("metadata", {})),
        }
        return session

    def _create_portal_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("customer"):
            raise StripeError(400, "Missing required param: customer.", param="customer")
        self._customer(params["customer"], "customer")
        session_id = _id("bps")
        session = {
            "id": session_id, "object": "billing_portal.session", "configuration": _id("bpc"),
            "created": int(time.time()), "customer": params["customer"], "flow": None,
            "livemode": False, "locale": None, "on_behalf_of": None,
            "return_url": params.get("return_url"), "url": f"{self.url}/portal/{session_id}",
        }  # fmt: skip
        self.portal_sessions[session_id] = session
        return session

    def _set_period(self, subscription: dict[str, Any], start: int, end: int) -> None:
        item = subscription["items"]["data"][0]
        item["current_period_start"], item["current_period_end"] = start, end
        if self.legacy_period_fields:
            subscription["current_period_start"] = start
            subscription["current_period_end"] = end

    def _new_invoice(
        self, subscription: dict[str, Any], reason: str, paid: bool, period: tuple[int, int]
    ) -> dict[str, Any]:
        item = subscription["items"]["data"][0]
        amount = (
            0
            if subscription["status"] == "trialing"
            else (item["price"]["unit_amount"] * item["quantity"])
        )
        customer = self.customers[subscription["customer"]]
        number = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
        now = int(time.time())
        # Stripe: an invoice's own period is when items could be added to it (the
        # previous period on a renewal, `created` on the first); the service
        # period it bills is on its line.
        own_start, own_end = (
            (now, now)
            if reason == "subscription_create"
            else (item["current_period_start"], item["current_period_end"])
        )
        invoice_id = _id("in")
        invoice = {
            "id": invoice_id, "object": "invoice", "account_country": "US",
            "account_name": "Fake Stripe", "amount_due": amount,
            "amount_paid": amount if paid else 0, "amount_remaining": 0 if paid else amount,
            "attempt_count": 1, "attempted": True, "auto_advance": not paid,
            "billing_reason": reason, "collection_method": "charge_automatically",
            "created": now, "currency": item["price"]["currency"],
            "customer": subscription["customer"], "customer_email": customer["email"],
            "description": None, "due_date": None, "ending_balance": 0,
            "hosted_invoice_url": f"{self.url}/invoices/{invoice_id}",
            "invoice_pdf": f"{self.url}/invoices/{invoice_id}/pdf",
            "lines": {"object": "list", "data": [{
                "id": _id("il"), "object": "line_item", "amount": amount,
                "currency": item["price"]["currency"], "description": f"1 × {item['price']['id']}",
                "invoice": invoice_id, "livemode": False, "metadata": {},
                "period": {"start": period[0], "end": period[1]},
                "pricing": {"type": "price_details", "unit_amount_decimal": str(amount),
                            "price_details": {"price": item["price"]["id"],
                                              "product": item["price"]["product"]}},
                "quantity": item["quantity"],
            }], "has_more": False, "total_count": 1, "url": f"/v1/invoices/{invoice_id}/lines"},
            "livemode": False, "metadata": {},
            "next_payment_attempt": None if paid else now + 3 * DAY, "number": number,
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"metadata": dict(subscription["metadata"]),
                                                "subscription": subscription["id"]}},
            "period_end": own_end, "period_start": own_start, "receipt_number": None,
            "starting_balance": 0, "status": "paid" if paid else "open",
            "status_transitions": {"finalized_at": now, "marked_uncollectible_at": None,
                                   "paid_at": now if paid else None, "voided_at": None},
            "subtotal": amount, "total": amount, "webhooks_delivered_at": now,
        }  # fmt: skip
        self.invoices[invoice_id] = invoice
        subscription["latest_invoice"] = invoice_id
        return invoice

    def _complete_checkout(self, session_id: str) -> dict[str, Any]:
        session = self.checkout_sessions.get(session_id)
        if session is None:
            raise _missing("checkout.session", session_id)
        if session["status"] != "open":
            raise StripeError(400, f"This Checkout Session is {session['status']}.")
        order = self._checkout_orders[session_id]
        customer_id = (
            session["customer"] or self._create_customer({"email": session["customer_email"]})["id"]
        )
        now = int(time.time())
        trial_days = order["trial_days"]
        end = now + (trial_days or self.period_days) * DAY
        subscription_id = _id("sub")
        subscription = {
            "id": subscription_id, "object": "subscription", "application": None,
            "billing_cycle_anchor": end if trial_days else now,
            "cancel_at": None, "cancel_at_period_end": False, "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically", "created": now,
            "currency": self.prices[order["price"]]["currency"], "customer": customer_id,
            "days_until_due": None, "default_payment_method": _id("pm"), "description": None,
            "discounts": [], "ended_at": None,
            "items": {"object": "list", "data": [{
                "id": _id("si", 14), "object": "subscription_item", "created": now,
                "current_period_end": end, "current_period_start": now, "discounts": [],
                "metadata": {}, "price": copy.deepcopy(self.prices[order["price"]]),
                "quantity": order["quantity"], "subscription": subscription_id, "tax_rates": [],
            }], "has_more": False, "total_count": 1,
                "url": f"/v1/subscription_items?subscription={subscription_id}"},
            "latest_invoice": None, "livemode": False, "metadata": order["metadata"],
            "pause_collection": None, "pending_update": None, "schedule": None,
            "start_date": now, "status": "trialing" if trial_days else "active",
            "test_clock": None, "trial_end": end if trial_days else None,
            "trial_start": now if trial_days else None,
        }  # fmt: skip
        self._set_period(subscription, now, end)
        self.subscriptions[subscription_id] = subscription
        invoice = self._new_invoice(subscription, "subscription_create", True, (now, end))
        session.update(
            customer=customer_id, invoice=invoice["id"], status="complete", url=None,
            subscription=subscription_id,
            payment_status="no_payment_required" if trial_days else "paid",
        )  # fmt: skip
        self._emit("customer.subscription.created", subscription)
        self._emit("invoice.paid", invoice)
        self._emit("checkout.session.completed", session)
        return session

    def _update_subscription(self, subscription: dict, params: dict[str, Any]) -> dict:
        before = copy.deepcopy(subscription)
        if "metadata" in params:
            subscription["metadata"] = _merge_metadata(subscription["metadata"], params["metadata"])
        at_period_end = _bool(params, "cancel_at_period_end")
        if at_period_end is not None:
            if subscription["status"] == "canceled":
                raise StripeError(
                    400,
                    "A canceled subscription can only update its cancellation_details and "
                    "metadata.",
                    param="cancel_at_period_end",
                )
            end = subscription["items"]["data"][0]["current_period_end"]
            subscription.update(
                cancel_at_period_end=at_period_end,
                cancel_at=end if at_period_end else None,
                canceled_at=int(time.time()) if at_period_end else None,
            )
            subscription["cancellation_details"]["reason"] = (
                "cancellation_requested" if at_period_end else None
            )
        self._emit_updated(before, subscription)
        return subscription

    def _emit_updated(self, before: dict[str, Any], subscription: dict[str, Any]) -> None:
        previous = _diff(before, subscription)
        if previous:
            self._emit("customer.subscription.updated", subscription, previous)

    def _cancel_now(self, subscription: dict[str, Any]) -> dict[str, Any]:
        if subscription["status"] == "canceled":
            raise StripeError(
                400, f"No active subscription: '{subscription['id']}' is already canceled."
            )
        now = int(time.time())
        subscription.update(status="canceled", ended_at=now)
        subscription["canceled_at"] = subscription["canceled_at"] or now
        reason = subscription["cancellation_details"]
        reason["reason"] = reason["reason"] or "cancellation_requested"
        self._emit("customer.subscription.deleted", subscription)
        return subscription

    def _next_period(self, subscription: dict[str, Any], status: str) -> tuple[int, int]:
        if subscription["status"] == "canceled":
            raise StripeError(400, f"Subscription '{subscription['id']}' is canceled.")
        start = subscription["items"]["data"][0]["current_period_end"]
        end = start + self.period_days * DAY
        self._set_period(subscription, start, end)
        subscription["status"] = status
        return start, end

    def _renew(self, subscription_id: str) -> dict[str, Any]:
        subscription = self._subscription(subscription_id)
        before = copy.deepcopy(subscription)
        open_invoice = self.invoices.get(subscription["latest_invoice"] or "")
        if subscription["status"] == "past_due" and open_invoice["status"] == "open":
            # A retry of the failed payment succeeds: the same period, now paid.
            open_invoice.update(
                status="paid", amount_paid=open_invoice["amount_due"], amount_remaining=0,
                attempt_count=open_invoice["attempt_count"] + 1, next_payment_attempt=None,
            )  # fmt: skip
            open_invoice["status_transitions"]["paid_at"] = int(time.time())
            subscription["status"] = "active"
            self._emit_updated(before, subscription)
            self._emit("invoice.paid", open_invoice)
            return subscription
        if subscription["cancel_at_period_end"]:
            return self._cancel_now(subscription)
        period = self._next_period(subscription, "active")
        invoice = self._new_invoice(subscription, "subscription_cycle", True, period)
        self._emit_updated(before, subscription)
        self._emit("invoice.paid", invoice)
        return subscription

    def _fail_payment(self, subscription_id: str) -> dict[str, Any]:
        subscription = self._subscription(subscription_id)
        before = copy.deepcopy(subscription)
        invoice = self.invoices.get(subscription["latest_invoice"] or "")
        if subscription["status"] == "past_due" and invoice["status"] == "open":
            invoice["attempt_count"] += 1  # another failed retry, same period
        else:
            period = self._next_period(subscription, "past_due")
            invoice = self._new_invoice(subscription, "subscription_cycle", False, period)
            self._emit_updated(before, subscription)
        self._emit("invoice.payment_failed", invoice)
        return subscription

    # -- events and their delivery -------------------------------------------

    def _emit(self, event_type: str, obj: dict, previous: dict | None = None) -> None:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        event = {
            "id": _id("evt"), "object": "event", "api_version": API_VERSION,
            "created": int(time.time()), "data": data, "livemode": False,
            "pending_webhooks": 1 if self.webhook_url else 0,
            "request": self._request or {"id": None, "idempotency_key": None},
            "type": event_type,
        }  # fmt: skip
        payload = json.dumps(event, indent=2)
        record = {"id": event["id"], "type": event_type, "payload": payload,
                  "signature": self.sign(payload), "event": event}  # fmt: skip
        self.events.append(record)
        if self.webhook_url and self.webhooks_enabled:
            self._enqueue(record)
        elif self.webhook_url:
            self._held.append(record)

    def _enqueue(self, record: dict[str, Any]) -> None:
        self._unsettled += 1
        self._settled.clear()
        self._queue.put_nowait(record)

    def _settle(self) -> None:
        self._unsettled -= 1
        if self._unsettled == 0:
            self._settled.set()

    async def _deliver_in_order(self) -> None:
        # First attempts go out one at a time, in order; a failed one retries on
        # its own schedule without holding up the rest (as Stripe does).
        while True:
            record = await self._queue.get()
            if await self._attempt(record, 1):
                self._settle()
            else:
                self._spawn(self._retry(record))

    async def _retry(self, record: dict[str, Any]) -> None:
        try:
            for attempt, delay in enumerate(self.retry_delays, start=2):
                await asyncio.sleep(delay)
                if await self._attempt(record, attempt):
                    return
        finally:
            self._settle()

    async def _attempt(self, record: dict[str, Any], attempt: int) -> bool:
        url = self.webhook_url or ""
        status: int | None = None
        error: str | None = None
        try:
            status = await asyncio.wait_for(self._post(url, record), self.delivery_timeout)
        except (TimeoutError, OSError, ValueError, IndexError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.deliveries.append({
            "event_id": record["id"], "type": record["type"], "attempt": attempt,
            "status": status, "error": error, "at": time.time(),
        })  # fmt: skip
        return status is not None and 200 <= status < 300

    async def _post(self, url: str, record: dict[str, Any]) -> int:
        parts = urlsplit(url)
        body = record["payload"].encode()
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        try:
            head = (
                f"POST {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
                f"Host: {parts.netloc}\r\n"
                "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
                "Content-Type: application/json; charset=utf-8\r\n"
                f"Stripe-Signature: {self.sign(body)}\r\n"  # signed at each attempt, like Stripe
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
            return int((await reader.readline()).split()[1])
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # -- HTTP ----------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line.strip():
                    break
                method, target, _version = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                path, _, query = target.partition("?")
                status, payload, extra = self._dispatch(method, path, query, headers, body)
                await self._send(writer, status, payload, extra)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass  # a client gone, a bad request line, or stop()
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _dispatch(self, method: str, path: str, query: str, headers: dict[str, str], raw: bytes):
        form = headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        try:
            if path.startswith("/v1/"):
                return self._api(method, path, query, headers, raw)
            if path.startswith("/_fake/"):
                pairs = parse_qsl(raw.decode(), keep_blank_values=True)
                body = parse_form(pairs) if form else json.loads(raw) if raw else {}
                result = self._control(method, path, body)
                session = self.checkout_sessions.get(path.split("/")[-2]) if form else None
                if session and session["success_url"]:  # the Pay form: back to the app
                    target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
                    return 303, b"", {"Location": target}
                return 200, result, {}
            return 200, self._html(method, path), {"Content-Type": "text/html; charset=utf-8"}
        except StripeError as exc:
            return exc.status, exc.body, {}
        except (KeyError, TypeError, ValueError) as exc:  # a control's body not as documented
            return 400, StripeError(400, f"Bad request body: {exc!r}").body, {}
        except Exception as exc:  # noqa: BLE001 - a bug of the fake: answer, not drop
            return 500, StripeError(500, repr(exc), type="api_error").body, {}

    def _api(self, method: str, path: str, query: str, headers: dict[str, str], raw: bytes):
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme == "Basic":  # `curl -u sk_test_...:` works with Stripe too
            with contextlib.suppress(ValueError):
                key = base64.b64decode(key).decode().partition(":")[0]
        elif scheme != "Bearer":
            key = ""
        if not key.startswith("sk_") or (self.api_key and key != self.api_key):
            message = (
                "You did not provide an API key."
                if not key
                else (f"Invalid API Key provided: {key[:8]}****{key[-4:]}")
            )
            return 401, StripeError(401, message).body, {"WWW-Authenticate": 'Basic realm="Stripe"'}
        pairs = parse_qsl(query, keep_blank_values=True)
        pairs += parse_qsl(raw.decode(), keep_blank_values=True)
        params = parse_form(pairs)
        request_id = _id("req", 14)
        idempotency_key = headers.get("idempotency-key") if method != "GET" else None
        self.requests.append({"method": method, "path": path, "params": params,
                              "idempotency_key": idempotency_key,
                              "request_id": request_id})  # fmt: skip
        extra = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        fingerprint = (method, path, sorted(pairs))
        if idempotency_key in self._idempotent:
            seen, status, body = self._idempotent[idempotency_key]
            if seen != fingerprint:
                error = StripeError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                    type="idempotency_error",
                )
                return 400, error.body, extra
            return status, body, {**extra, "Idempotent-Replayed": "true"}
        self._request = {"id": request_id, "idempotency_key": idempotency_key}
        try:
            status, body = 200, self._route(method, path, params)
        except StripeError as exc:
            status, body = exc.status, exc.body
        finally:
            self._request = None
        if idempotency_key:
            self._idempotent[idempotency_key] = (fingerprint, status, copy.deepcopy(body))
        return status, body, extra

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        parts = path.strip("/").split("/")[1:]
        match method, parts:
            case "POST", ["customers"]:
                return self._create_customer(params)
            case "GET", ["customers", customer_id]:
                return self._customer(customer_id)
            case "POST", ["checkout", "sessions"]:
                return self._create_checkout_session(params)
            case "GET", ["checkout", "sessions", session_id] if (
                session_id in self.checkout_sessions
            ):
                return self.checkout_sessions[session_id]
            case "POST", ["billing_portal", "sessions"]:
                return self._create_portal_session(params)
            case "GET", ["subscriptions", subscription_id]:
                return self._subscription(subscription_id)
            case "POST", ["subscriptions", subscription_id]:
                return self._update_subscription(self._subscription(subscription_id), params)
            case "DELETE", ["subscriptions", subscription_id]:
                return self._cancel_now(self._subscription(subscription_id))
            case "GET", ["invoices", invoice_id] if invoice_id in self.invoices:
                return self.invoices[invoice_id]
            case "GET", ["checkout", "sessions", session_id]:
                raise _missing("checkout.session", session_id)
            case "GET", ["invoices", invoice_id]:
                raise _missing("invoice", invoice_id)
        raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")

    def _control(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        match method, path.strip("/").split("/")[1:]:
            case "POST", ["checkout_sessions", session_id, "complete"]:
                return self._complete_checkout(session_id)
            case "POST", ["subscriptions", subscription_id, "renew"]:
                return self._renew(subscription_id)
            case "POST", ["subscriptions", subscription_id, "payment_failed"]:
                return self._fail_payment(subscription_id)
            case "POST", ["subscriptions", subscription_id, "delete"]:
                return self._cancel_now(self._subscription(subscription_id))
            case "POST", ["prices"]:
                return self.add_price(
                    body["id"], int(body["unit_amount"]), body.get("currency", "usd")
                )
            case "POST", ["webhooks"]:
                self.set_webhooks(bool(body.get("enabled", True)), body.get("url"))
                return {"enabled": self.webhooks_enabled, "held": len(self._held)}
            case "GET", ["events"]:
                return {"events": [{k: r[k] for k in ("id", "type", "payload", "signature")}
                                   for r in self.events]}  # fmt: skip
            case "GET", ["deliveries"]:
                return {"deliveries": self.deliveries}
            case "GET", ["requests"]:
                return {"requests": self.requests}
        raise StripeError(404, f"No fake control {method} {path}.")

    def _html(self, method: str, path: str) -> bytes:
        match method, path.strip("/").split("/"):
            case "GET", ["checkout", session_id] if session_id in self.checkout_sessions:
                session = self.checkout_sessions[session_id]
                order = self._checkout_orders[session_id]
                amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
                form = (
                    f"<form method='post' action='/_fake/checkout_sessions/{quote(session_id)}"
                    "/complete'><button name='pay' value='1'>Pay</button></form>"
                    if session["status"] == "open" else "<p>Already paid.</p>"
                )  # fmt: skip
                return _page(f"Subscribe to {order['price']}", f"<p>{amount} a month</p>{form}")
            case "GET", ["portal", session_id] if session_id in self.portal_sessions:
                back = html.escape(self.portal_sessions[session_id]["return_url"] or "/")
                return _page("Billing portal", f"<a href='{back}'>Return</a>")
            case "GET", ["invoices", invoice_id, *_] if invoice_id in self.invoices:
                invoice = self.invoices[invoice_id]
                return _page(f"Invoice {invoice['number']}", f"<p>{invoice['status']}</p>")
        raise StripeError(404, f"No page {method} {path}.")

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, payload: Any, extra: dict) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **extra, "Content-Length": str(len(data))}
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1") + data)
        await writer.drain()


async def _serve_forever(args: argparse.Namespace) -> None:
    fake = FakeStripe(
        args.host,
        args.port,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        api_key=args.api_key,
        legacy_period_fields=args.legacy_period_fields,
        period_days=args.period_days,
    )
    await fake.start()
    print(f"fake Stripe API listening on {fake.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url", default=None, help="where events are POSTed")
    parser.add_argument("--webhook-secret", default="whsec_fake_stripe_secret")
    parser.add_argument("--api-key", default=None, help="the only key accepted (default: any sk_)")
    parser.add_argument(
        "--legacy-period-fields",
        action="store_true",
        help="also put current_period_start/_end on the subscription (pre-2025-03-31 shape)",
    )
    parser.add_argument("--period-days", type=int, default=30)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args))


if __name__ == "__main__":
    main()
