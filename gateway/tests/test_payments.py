"""Buying plans through Stripe, over the gateway: routes, shapes and the
mapping of billing's refusals to problems (billing faked over real gRPC)."""

from __future__ import annotations

import grpc
import httpx

from .fakes import FakeBackends


async def test_checkout_is_201_with_the_url_and_passes_the_plan_and_urls(
    api: httpx.AsyncClient, backends: FakeBackends, auth, user_id
):
    response = await api.post(
        "/v1/billing/checkout",
        json={"plan": "pro", "success_url": "https://app.example/thanks"},
        headers=auth,
    )
    assert response.status_code == 201
    assert response.json() == {
        "checkout_url": "https://checkout.example/cs_test_123",
        "session_id": "cs_test_123",
    }
    sent = backends.only("CreateCheckoutSession").request
    assert (sent.user_id, sent.plan, sent.success_url, sent.cancel_url) == (
        user_id, "pro", "https://app.example/thanks", ""
    )
    # The Stripe customer is addressed to the account's email.
    assert sent.email == "ada@example.com"


async def test_checkout_of_an_unknown_plan_or_a_bad_url_is_422(api, backends, auth, problem):
    for body in ({"plan": "free"}, {"plan": "pro", "success_url": "not a url"}, {}):
        response = await api.post("/v1/billing/checkout", json=body, headers=auth)
        problem(response, 422)
    assert not [c for c in backends.calls if c.method == "CreateCheckoutSession"]


async def test_payment_routes_need_a_token(api, problem):
    for method, path in (
        ("POST", "/v1/billing/checkout"),
        ("GET", "/v1/billing/subscription"),
        ("POST", "/v1/billing/subscription/cancel"),
        ("POST", "/v1/billing/subscription/resume"),
        ("POST", "/v1/billing/portal"),
        ("GET", "/v1/billing/invoices"),
    ):
        problem(await api.request(method, path, json={"plan": "pro"}), 401)


async def test_subscription_cancel_and_resume_answer_the_subscription(api, auth):
    current = await api.get("/v1/billing/subscription", headers=auth)
    assert current.status_code == 200
    assert current.json() == {
        "plan": "pro",
        "status": "active",
        "current_period_start": "2025-01-01T00:00:00Z",
        "current_period_end": "2025-02-01T00:00:00Z",
        "cancel_at_period_end": False,
    }
    cancelled = await api.post("/v1/billing/subscription/cancel", headers=auth)
    assert cancelled.json()["cancel_at_period_end"] is True
    resumed = await api.post("/v1/billing/subscription/resume", headers=auth)
    assert resumed.json()["cancel_at_period_end"] is False


async def test_portal_and_invoices(api, backends, auth):
    portal = await api.post("/v1/billing/portal", headers=auth)
    assert portal.status_code == 200 and portal.json() == {"url": "https://portal.example/bps_123"}
    page = await api.get("/v1/billing/invoices?limit=5", headers=auth)
    assert page.status_code == 200
    body = page.json()
    assert body["next_cursor"] == "next-page"
    assert body["items"] == [
        {
            "id": "in_1",
            "number": "F-0001",
            "status": "paid",
            "amount_paid": 2000,
            "currency": "usd",
            "hosted_invoice_url": "https://invoice.example/in_1",
            "period": {"start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:00Z"},
            "created": "2025-01-01T00:00:00Z",
        }
    ]
    sent = backends.only("ListInvoices").request
    assert (sent.limit, sent.cursor) == (5, "")


async def test_the_webhook_passes_the_exact_bytes_and_signature_without_a_token(api, backends):
    body = b'{"id": "evt_1",  "type": "invoice.paid"}'
    response = await api.post(
        "/v1/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": "t=1,v1=abc", "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json() == {"received": True, "event_id": "evt_1", "duplicate": False}
    sent = backends.only("ReceiveStripeEvent").request
    assert (sent.payload, sent.signature) == (body, "t=1,v1=abc")


async def test_a_webhook_without_or_with_a_bad_signature_is_400(api, backends, problem):
    missing = await api.post("/v1/webhooks/stripe", json={"id": "evt_1"})
    assert problem(missing, 400)["type"].endswith("/bad-request")
    backends.fail(
        "ReceiveStripeEvent",
        grpc.StatusCode.INVALID_ARGUMENT,
        "the Stripe-Signature header does not verify",
        reason="webhook-signature-invalid",
    )
    bad = await api.post(
        "/v1/webhooks/stripe", json={"id": "evt_1"}, headers={"Stripe-Signature": "t=1,v1=0"}
    )
    assert problem(bad, 400)["type"].endswith("/webhook-signature-invalid")


async def test_billings_refusals_become_problems(api, backends, auth, problem):
    backends.fail(
        "CreateCheckoutSession",
        grpc.StatusCode.UNAVAILABLE,
        "payments are not configured (no STRIPE_API_KEY)",
        reason="payments-not-configured",
    )
    response = await api.post("/v1/billing/checkout", json={"plan": "pro"}, headers=auth)
    body = problem(response, 503)
    assert body["type"].endswith("/payments-not-configured")
    assert "not configured" in body["detail"] and "retry-after" not in response.headers

    backends.fail(
        "CreatePortalSession", grpc.StatusCode.UNAVAILABLE, "Stripe failed",
        reason="payment-provider-unavailable",
    )
    response = await api.post("/v1/billing/portal", headers=auth)
    assert problem(response, 503)["type"].endswith("/payment-provider-unavailable")
    assert response.headers["retry-after"]

    backends.fail(
        "CancelSubscription", grpc.StatusCode.FAILED_PRECONDITION, "no active subscription",
        reason="no-subscription",
    )
    response = await api.post("/v1/billing/subscription/cancel", headers=auth)
    assert problem(response, 409)["type"].endswith("/no-subscription")

    backends.fail(
        "CreateCheckoutSession", grpc.StatusCode.ALREADY_EXISTS, "already subscribed to pro",
        reason="already-subscribed",
    )
    response = await api.post("/v1/billing/checkout", json={"plan": "pro"}, headers=auth)
    assert problem(response, 409)["type"].endswith("/already-subscribed")
