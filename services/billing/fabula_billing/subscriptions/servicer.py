"""The subscription methods of fabula.billing.v1.BillingService: proto <->
domain, one transaction per call."""

from __future__ import annotations

from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula_common.db import Database
from fabula_common.pagination import decode_cursor, encode_cursor, page_limit

from fabula_billing.subscriptions.service import SubscriptionService, SubscriptionView
from fabula_billing.subscriptions.tasks import StripeInboxWorker
from fabula_billing.usage.service import parse_uuid
from fabula_billing.usage.servicer import usage_summary


class SubscriptionsServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(
        self, db: Database, subscriptions: SubscriptionService, inbox: StripeInboxWorker
    ) -> None:
        self.db = db
        self.subscriptions = subscriptions
        self.inbox = inbox

    async def CreateCheckoutSession(self, request: billing_pb2.CreateCheckoutSessionRequest, context):
        user_id = parse_uuid(request.user_id, "user_id")
        async with self.db.session_scope() as session:
            session_id, url = await self.subscriptions.checkout(
                session,
                user_id,
                request.plan,
                success_url=request.success_url,
                cancel_url=request.cancel_url,
                email=request.email,
            )
        return billing_pb2.CheckoutSession(session_id=session_id, checkout_url=url)

    async def CreatePortalSession(self, request: billing_pb2.CreatePortalSessionRequest, context):
        user_id = parse_uuid(request.user_id, "user_id")
        async with self.db.session_scope() as session:
            url = await self.subscriptions.portal(session, user_id, request.return_url)
        return billing_pb2.PortalSession(url=url)

    async def GetSubscription(self, request: billing_pb2.GetSubscriptionRequest, context):
        user_id = parse_uuid(request.user_id, "user_id")
        async with self.db.session_scope() as session:
            view = await self.subscriptions.subscription(session, user_id)
        return subscription_message(view)

    async def CancelSubscription(self, request: billing_pb2.CancelSubscriptionRequest, context):
        return await self._cancel_at_period_end(request.user_id, True)

    async def ResumeSubscription(self, request: billing_pb2.ResumeSubscriptionRequest, context):
        return await self._cancel_at_period_end(request.user_id, False)

    async def _cancel_at_period_end(self, user_id: str, cancel: bool) -> billing_pb2.Subscription:
        user = parse_uuid(user_id, "user_id")
        async with self.db.session_scope() as session:
            view = await self.subscriptions.set_cancel_at_period_end(session, user, cancel)
        return subscription_message(view)

    async def ListInvoices(self, request: billing_pb2.ListInvoicesRequest, context):
        user_id = parse_uuid(request.user_id, "user_id")
        limit = page_limit(request.limit)
        after = decode_cursor(request.cursor)
        async with self.db.session_scope() as session:
            invoices = await self.subscriptions.invoices(session, user_id, limit + 1, after)
        reply = billing_pb2.ListInvoicesResponse()
        for invoice in invoices[:limit]:
            message = reply.invoices.add(
                id=invoice.id,
                number=invoice.number or "",
                status=invoice.status,
                amount_paid=invoice.amount_paid,
                amount_due=invoice.amount_due,
                currency=invoice.currency,
                hosted_invoice_url=invoice.hosted_invoice_url or "",
                created=invoice.created,
            )
            if invoice.period_start:
                message.period_start.FromDatetime(invoice.period_start)
            if invoice.period_end:
                message.period_end.FromDatetime(invoice.period_end)
        if len(invoices) > limit:
            last = invoices[limit - 1]
            reply.next_cursor = encode_cursor(last.created, last.id)
        return reply

    async def ReceiveStripeEvent(self, request: billing_pb2.ReceiveStripeEventRequest, context):
        async with self.db.session_scope() as session:
            event_id, duplicate = await self.subscriptions.receive_event(
                session, request.payload, request.signature
            )
        # Stored and committed: handled after answering, so Stripe gets its
        # 2xx at once whatever the handling costs.
        self.inbox.wake()
        return billing_pb2.ReceiveStripeEventResponse(event_id=event_id, duplicate=duplicate)

    async def SetPlan(self, request: billing_pb2.SetPlanRequest, context):
        user_id = parse_uuid(request.user_id, "user_id")
        async with self.db.session_scope() as session:
            await self.subscriptions.set_plan(
                session, user_id, request.plan, request.actor, request.reason
            )
            usage = await self.subscriptions.billing.get_usage(session, user_id)
        return usage_summary(usage)


def subscription_message(view: SubscriptionView) -> billing_pb2.Subscription:
    message = billing_pb2.Subscription(
        plan=view.plan,
        status=view.status,
        cancel_at_period_end=view.cancel_at_period_end,
        subscription_id=view.subscription_id,
        subscribed_plan=view.subscribed_plan,
    )
    if view.current_period_start:
        message.current_period_start.FromDatetime(view.current_period_start)
    if view.current_period_end:
        message.current_period_end.FromDatetime(view.current_period_end)
    return message
