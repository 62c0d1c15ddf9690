"""Buying a plan end to end: the real processes, the official Stripe SDK in
billing talking to a local server that speaks Stripe's wire format, and that
server's signed webhooks delivered to the gateway, as Stripe would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fabula_common.testing import free_port

pytestmark = pytest.mark.e2e

FAKE = Path(__file__).resolve().parent.parent / "fakes" / "fake_stripe.py"
WEBHOOK_SECRET = "whsec_e2e_payments"


@pytest.fixture
def fake_stripe():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(FAKE), "--port", str(port), "--webhook-secret", WEBHOOK_SECRET]
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(f"{url}/_fake/events", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "fake Stripe server did not start"
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_payments_are_503_until_configured(api, problem):
    writer = api.register()
    response = api.http.post("/v1/billing/checkout", json={"plan": "pro"}, headers=writer.headers)
    assert "STRIPE_API_KEY" in problem(response, 503, "payments-not-configured")["detail"]
    # Everything else works as before.
    assert api.http.get("/v1/billing/subscription", headers=writer.headers).json()["status"] == "none"


def test_buy_pro_use_it_cancel_and_return_to_free(fake_stripe, start_private_stack, problem):
    gateway_port = str(free_port())
    api = start_private_stack(
        GATEWAY_PORT=gateway_port,
        STRIPE_API_KEY="sk_test_e2e",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=fake_stripe,
        STRIPE_PRICE_PRO="price_pro",
        STRIPE_PRICE_ENTERPRISE="price_enterprise",
    )
    stripe = httpx.Client(base_url=fake_stripe, timeout=10)
    stripe.post("/_fake/webhooks", json={
        "enabled": True, "url": f"http://127.0.0.1:{gateway_port}/v1/webhooks/stripe"
    }).raise_for_status()
    writer = api.register()

    checkout = api.http.post("/v1/billing/checkout", json={"plan": "pro"}, headers=writer.headers)
    assert checkout.status_code == 201, checkout.text
    session_id = checkout.json()["session_id"]
    assert checkout.json()["checkout_url"].startswith(fake_stripe)
    # Stripe's customer is the account's email (receipts and invoices go there).
    key = {"Authorization": "Bearer sk_test_e2e"}
    customer_id = stripe.get(f"/v1/checkout/sessions/{session_id}", headers=key).json()["customer"]
    customer = stripe.get(f"/v1/customers/{customer_id}", headers=key).json()
    assert customer["email"] == writer.email
    # The user pays on Stripe's page; Stripe sends its signed webhooks.
    stripe.post(f"/_fake/checkout_sessions/{session_id}/complete").raise_for_status()

    usage = api.wait_for(lambda: (u := api.usage(writer))["plan"] == "pro" and u)
    assert usage["generations_limit"] == 50
    subscription = api.http.get("/v1/billing/subscription", headers=writer.headers).json()
    assert (subscription["plan"], subscription["status"], subscription["cancel_at_period_end"]) == (
        "pro", "active", False
    )
    # More than free's 5 generations, at once.
    for _ in range(6):
        assert api.create_story(writer).status_code == 201
    invoices = api.http.get("/v1/billing/invoices", headers=writer.headers).json()["items"]
    assert [(i["status"], i["amount_paid"], i["currency"]) for i in invoices] == [("paid", 2000, "usd")]
    portal = api.http.post("/v1/billing/portal", headers=writer.headers)
    assert portal.status_code == 200 and portal.json()["url"].startswith(fake_stripe)

    # Duplicated and tampered deliveries leave the state right.
    events = stripe.get("/_fake/events").json()["events"]
    created = next(e for e in events if e["type"] == "customer.subscription.created")
    webhook = f"http://127.0.0.1:{gateway_port}/v1/webhooks/stripe"
    duplicate = httpx.post(webhook, content=created["payload"], headers={
        "Stripe-Signature": created["signature"], "Content-Type": "application/json"})
    assert duplicate.status_code == 200 and duplicate.json()["duplicate"] is True
    forged = json.loads(created["payload"])
    forged["id"] = "evt_forged"
    forged["data"]["object"]["status"] = "canceled"
    tampered = httpx.post(webhook, content=json.dumps(forged), headers={
        "Stripe-Signature": created["signature"], "Content-Type": "application/json"})
    problem(tampered, 400, "webhook-signature-invalid")
    assert api.usage(writer)["plan"] == "pro"

    cancelled = api.http.post("/v1/billing/subscription/cancel", headers=writer.headers)
    assert cancelled.status_code == 200 and cancelled.json()["cancel_at_period_end"] is True
    assert api.usage(writer)["plan"] == "pro"  # until the period ends

    # The period ends: Stripe deletes the subscription and says so.
    subscription_id = next(e for e in events if e["type"] == "customer.subscription.created")
    subscription_id = json.loads(subscription_id["payload"])["data"]["object"]["id"]
    stripe.post(f"/_fake/subscriptions/{subscription_id}/renew").raise_for_status()
    usage = api.wait_for(lambda: (u := api.usage(writer))["plan"] == "free" and u)
    assert usage["generations_limit"] == 5
    assert api.http.get("/v1/billing/subscription", headers=writer.headers).json()["status"] == "canceled"
