"""Buying a plan through Stripe, and Stripe's webhooks (billing service)."""

from __future__ import annotations

from typing import Annotated

from fabula.billing.v1 import billing_pb2
from fabula.users.v1 import users_pb2
from fastapi import APIRouter, Header, Query, Request, status

from fabula_gateway.dependencies import Clients, CurrentUserId
from fabula_gateway.openapi import problem_responses
from fabula_gateway.payments.mappers import invoice_page_from_proto, subscription_from_proto
from fabula_gateway.payments.schemas import (
    CheckoutCreate,
    CheckoutPublic,
    InvoicePage,
    PortalCreate,
    PortalPublic,
    SubscriptionPublic,
    WebhookReceived,
)
from fabula_gateway.problems import BAD_REQUEST, ProblemError

router = APIRouter(tags=["billing"])

NOT_CONFIGURED = "503 when payments are not configured (no STRIPE_API_KEY)."


@router.post(
    "/v1/billing/checkout",
    operation_id="create_checkout",
    status_code=status.HTTP_201_CREATED,
    response_model=CheckoutPublic,
    summary="Buy a plan",
    description="A Stripe Checkout session for the plan (a subscription). Send the user to "
    "`checkout_url`; the plan changes when Stripe reports the payment. 409 while a "
    "subscription is live (use the portal to change it). " + NOT_CONFIGURED,
    responses=problem_responses(401, 409, 422, 500, 503),
)
async def create_checkout(
    body: CheckoutCreate, user_id: CurrentUserId, clients: Clients
) -> CheckoutPublic:
    # The account's email goes on the Stripe customer (receipts, invoices and
    # the Checkout page are addressed to it).
    account = await clients.users.GetUser(users_pb2.GetUserRequest(user_id=user_id))
    reply = await clients.billing.CreateCheckoutSession(
        billing_pb2.CreateCheckoutSessionRequest(
            user_id=user_id,
            plan=body.plan,
            success_url=str(body.success_url or ""),
            cancel_url=str(body.cancel_url or ""),
            email=account.email,
        )
    )
    return CheckoutPublic(checkout_url=reply.checkout_url, session_id=reply.session_id)


@router.get(
    "/v1/billing/subscription",
    operation_id="get_subscription",
    response_model=SubscriptionPublic,
    summary="The subscription",
    description="The plan the account is on and its Stripe subscription, if any.",
    responses=problem_responses(401, 500, 503),
)
async def get_subscription(user_id: CurrentUserId, clients: Clients) -> SubscriptionPublic:
    reply = await clients.billing.GetSubscription(
        billing_pb2.GetSubscriptionRequest(user_id=user_id)
    )
    return subscription_from_proto(reply)


@router.post(
    "/v1/billing/subscription/cancel",
    operation_id="cancel_subscription",
    response_model=SubscriptionPublic,
    summary="Cancel at the period's end",
    description="The plan stays until the current period ends, then the account returns to "
    "free. 409 without a live subscription. " + NOT_CONFIGURED,
    responses=problem_responses(401, 409, 500, 503),
)
async def cancel_subscription(user_id: CurrentUserId, clients: Clients) -> SubscriptionPublic:
    reply = await clients.billing.CancelSubscription(
        billing_pb2.CancelSubscriptionRequest(user_id=user_id)
    )
    return subscription_from_proto(reply)


@router.post(
    "/v1/billing/subscription/resume",
    operation_id="resume_subscription",
    response_model=SubscriptionPublic,
    summary="Keep the subscription",
    description="Undo a cancellation at the period's end. " + NOT_CONFIGURED,
    responses=problem_responses(401, 409, 500, 503),
)
async def resume_subscription(user_id: CurrentUserId, clients: Clients) -> SubscriptionPublic:
    reply = await clients.billing.ResumeSubscription(
        billing_pb2.ResumeSubscriptionRequest(user_id=user_id)
    )
    return subscription_from_proto(reply)


@router.post(
    "/v1/billing/portal",
    operation_id="create_portal_session",
    response_model=PortalPublic,
    summary="Manage payment details",
    description="A Stripe customer portal session: payment methods, invoices, plan changes. "
    "409 before the first checkout. " + NOT_CONFIGURED,
    responses=problem_responses(401, 409, 422, 500, 503),
)
async def create_portal_session(
    user_id: CurrentUserId, clients: Clients, body: PortalCreate | None = None
) -> PortalPublic:
    return_url = str(body.return_url) if body and body.return_url else ""
    reply = await clients.billing.CreatePortalSession(
        billing_pb2.CreatePortalSessionRequest(user_id=user_id, return_url=return_url)
    )
    return PortalPublic(url=reply.url)


@router.get(
    "/v1/billing/invoices",
    operation_id="list_invoices",
    response_model=InvoicePage,
    summary="List invoices",
    description="The user's invoices as Stripe reported them, newest first.",
    responses=problem_responses(401, 422, 500, 503),
)
async def list_invoices(
    user_id: CurrentUserId,
    clients: Clients,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> InvoicePage:
    reply = await clients.billing.ListInvoices(
        billing_pb2.ListInvoicesRequest(user_id=user_id, limit=limit, cursor=cursor or "")
    )
    return invoice_page_from_proto(reply)


@router.post(
    "/v1/webhooks/stripe",
    operation_id="receive_stripe_webhook",
    response_model=WebhookReceived,
    summary="Stripe webhooks",
    description="For Stripe only: no bearer token; the `Stripe-Signature` header is verified "
    "by billing against STRIPE_WEBHOOK_SECRET. 400 for a missing or bad signature (nothing "
    "is stored). A duplicate delivery is 200 with `duplicate: true` and has no effect.",
    responses=problem_responses(400, 500, 503),
)
async def receive_stripe_webhook(
    request: Request,
    clients: Clients,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> WebhookReceived:
    if not stripe_signature:
        raise ProblemError(BAD_REQUEST, "The Stripe-Signature header is required.")
    # The signature covers the exact bytes: passed on untouched.
    payload = await request.body()
    reply = await clients.billing.ReceiveStripeEvent(
        billing_pb2.ReceiveStripeEventRequest(payload=payload, signature=stripe_signature)
    )
    return WebhookReceived(event_id=reply.event_id, duplicate=reply.duplicate)
