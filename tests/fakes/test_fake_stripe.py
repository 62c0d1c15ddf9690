"""The fake Stripe API through the real `stripe` SDK, and its signed webhooks."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Self

import httpx
import pytest
import stripe

SECRET = "whsec_test_secret"
API_KEY = "sk_test_fake"


def _load_fake_stripe():
    # tests/ is not a package (and pytest runs with --import-mode=importlib).
    name = "fake_stripe"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("fake_stripe.py")
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fake_stripe = _load_fake_stripe()


class WebhookReceiver:
    """An endpoint that records what Stripe (the fake) POSTs; answers `statuses` in turn."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1/webhooks/stripe"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers["content-length"]))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.received.append((headers, body))
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    def verified_events(self) -> list[stripe.Event]:
        return [
            stripe.Webhook.construct_event(body, headers["stripe-signature"], SECRET)
            for headers, body in self.received
        ]


def sdk(fake, api_key: str = API_KEY) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": fake.url},
        http_client=stripe.HTTPXClient(timeout=5),
        max_network_retries=0,
    )


@pytest.fixture
async def receiver():
    async with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
async def fake(receiver):
    async with fake_stripe.FakeStripe(
        webhook_url=receiver.url, webhook_secret=SECRET, retry_delays=(0.05, 0.1)
    ) as fake:
        yield fake


async def checkout(client: stripe.StripeClient, **extra) -> stripe.checkout.Session:
    customer = await client.v1.customers.create_async(params={"metadata": {"user_id": "u1"}})
    return await client.v1.checkout.sessions.create_async(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "client_reference_id": "u1",
            "metadata": {"user_id": "u1"},
            "line_items": [{"price": "price_pro", "quantity": 1}],
            "success_url": "https://app.example/paid?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.example/cancel",
            "subscription_data": {"metadata": {"user_id": "u1"}, **extra},
        }
    )


async def test_a_customer_is_created_once_per_idempotency_key_and_retrieved(fake):
    client = sdk(fake)
    options = {"idempotency_key": "create-customer-u1"}
    params = {"email": "ann@example.com", "metadata": {"user_id": "u1"}}
    first = await client.v1.customers.create_async(params=params, options=options)
    again = await client.v1.customers.create_async(params=params, options=options)
    assert again.id == first.id and first.id.startswith("cus_")
    assert len(fake.customers) == 1
    found = await client.v1.customers.retrieve_async(first.id)
    assert (found.email, found.metadata["user_id"]) == ("ann@example.com", "u1")
    assert fake.requests[0]["params"] == params
    with pytest.raises(stripe.IdempotencyError):
        await client.v1.customers.create_async(params={"email": "bob@example.com"}, options=options)


async def test_a_bad_key_and_a_missing_object_are_stripe_errors(fake):
    with pytest.raises(stripe.AuthenticationError):
        await sdk(fake, api_key="not-a-key").v1.customers.retrieve_async("cus_x")
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await sdk(fake).v1.subscriptions.retrieve_async("sub_nope")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as bad_price:
        await sdk(fake).v1.checkout.sessions.create_async(
            params={"mode": "subscription", "line_items": [{"price": "price_nope"}]}
        )
    assert bad_price.value.param == "line_items[0][price]"


async def test_paying_at_checkout_creates_the_subscription_and_sends_signed_events(fake, receiver):
    client = sdk(fake)
    session = await checkout(client)
    assert (session.object, session.status) == ("checkout.session", "open")
    assert session.id.startswith("cs_test_")
    sent = fake.requests[-1]["params"]
    assert sent["line_items"] == [{"price": "price_pro", "quantity": "1"}]
    assert sent["subscription_data"] == {"metadata": {"user_id": "u1"}}

    async with httpx.AsyncClient() as browser:
        page = await browser.get(session.url)
        assert "Pay" in page.text
        paid = await browser.post(
            f"{fake.url}/_fake/checkout_sessions/{session.id}/complete", data={"pay": "1"}
        )
    assert paid.status_code == 303
    assert paid.headers["location"] == f"https://app.example/paid?session={session.id}"
    await fake.wait_for_deliveries()

    events = receiver.verified_events()  # raises if any signature is wrong
    assert [e.type for e in events] == [
        "customer.subscription.created",
        "invoice.paid",
        "checkout.session.completed",
    ]
    completed = events[2].data.object
    assert (completed.status, completed.client_reference_id) == ("complete", "u1")
    assert completed.metadata["user_id"] == "u1" and completed.customer == session.customer
    invoice = events[1].data.object
    assert invoice.parent.subscription_details.subscription == completed.subscription
    assert (invoice.status, invoice.amount_paid, invoice.currency) == ("paid", 2000, "usd")

    subscription = await client.v1.subscriptions.retrieve_async(completed.subscription)
    item = subscription["items"].data[0]
    assert (subscription.status, item.price.id) == ("active", "price_pro")
    assert item.current_period_end - item.current_period_start == 30 * 86_400
    assert subscription.metadata["user_id"] == "u1"
    assert "current_period_end" not in subscription  # moved onto items in 2025-03-31.basil


async def test_cancel_at_period_end_and_resume_round_trip_then_cancel_now(fake, receiver):
    client = sdk(fake)
    session = await fake.complete_checkout((await checkout(client)).id)
    sub_id = session["subscription"]
    period_end = fake.subscriptions[sub_id]["items"]["data"][0]["current_period_end"]

    canceling = await client.v1.subscriptions.update_async(
        sub_id, params={"cancel_at_period_end": True}
    )
    assert (canceling.cancel_at_period_end, canceling.cancel_at) == (True, period_end)
    resumed = await client.v1.subscriptions.update_async(
        sub_id, params={"cancel_at_period_end": False}
    )
    assert (resumed.cancel_at_period_end, resumed.cancel_at) == (False, None)
    await client.v1.subscriptions.cancel_async(sub_id)
    ended = await client.v1.subscriptions.retrieve_async(sub_id)
    assert ended.status == "canceled" and ended.canceled_at is not None

    await fake.wait_for_deliveries()
    events = receiver.verified_events()[3:]
    assert [e.type for e in events] == [
        "customer.subscription.updated",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
    assert events[0].data.previous_attributes["cancel_at_period_end"] is False
    assert events[1].data.previous_attributes["cancel_at"] == period_end
    (first_update, _) = [
        r
        for r in fake.requests
        if r["path"] == f"/v1/subscriptions/{sub_id}" and r["method"] == "POST"
    ]
    assert events[0].request.id == first_update["request_id"]
    assert events[0].request.idempotency_key == first_update["idempotency_key"]


async def test_renewal_failure_and_recovery_move_the_period_and_the_status(fake, receiver):
    session = await fake.complete_checkout((await checkout(sdk(fake))).id)
    sub_id = session["subscription"]
    first_end = fake.subscriptions[sub_id]["items"]["data"][0]["current_period_end"]
    await fake.fail_payment(sub_id)
    assert fake.subscriptions[sub_id]["status"] == "past_due"
    await fake.renew(sub_id)  # the retry is paid: same period
    async with httpx.AsyncClient() as http:
        renewed = await http.post(f"{fake.url}/_fake/subscriptions/{sub_id}/renew")
    item = renewed.json()["items"]["data"][0]
    assert (renewed.json()["status"], item["current_period_start"]) == (
        "active",
        first_end + 30 * 86_400,
    )
    await fake.wait_for_deliveries()
    assert [e.type for e in receiver.verified_events()[3:]] == [
        "customer.subscription.updated",
        "invoice.payment_failed",
        "customer.subscription.updated",
        "invoice.paid",
        "customer.subscription.updated",
        "invoice.paid",
    ]


async def test_a_trial_and_the_legacy_period_fields(receiver):
    async with fake_stripe.FakeStripe(
        webhook_url=receiver.url, webhook_secret=SECRET, legacy_period_fields=True
    ) as fake:
        session = await fake.complete_checkout((await checkout(sdk(fake), trial_period_days=7)).id)
        subscription = await sdk(fake).v1.subscriptions.retrieve_async(session["subscription"])
    assert subscription.status == "trialing"
    assert subscription.current_period_end == subscription.trial_end
    assert subscription.current_period_end == subscription["items"].data[0].current_period_end


async def test_failed_deliveries_are_retried_and_held_ones_flushed_in_order(fake, receiver):
    receiver.statuses = [500]
    await fake.complete_checkout((await checkout(sdk(fake))).id)
    await fake.wait_for_deliveries()
    first = [d for d in fake.deliveries if d["event_id"] == fake.events[0]["id"]]
    assert [(d["attempt"], d["status"]) for d in first] == [(1, 500), (2, 200)]
    assert len(receiver.received) == 3

    fake.set_webhooks(False)
    await fake.complete_checkout((await checkout(sdk(fake))).id)
    await asyncio.sleep(0.1)
    assert len(receiver.received) == 3  # held
    async with httpx.AsyncClient() as http:
        await http.post(f"{fake.url}/_fake/webhooks", json={"enabled": True})
        listed = (await http.get(f"{fake.url}/_fake/events")).json()["events"]
    await fake.wait_for_deliveries()
    assert [json.loads(b)["id"] for _, b in receiver.received[3:]] == [e["id"] for e in listed[3:]]
    # A listed event can be re-sent as is: its header verifies against its raw body.
    assert stripe.Webhook.construct_event(listed[0]["payload"], listed[0]["signature"], SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            listed[0]["payload"].replace("u1", "u2"), listed[0]["signature"], SECRET
        )
