"""Billing's subscription messages -> REST responses."""

from __future__ import annotations

import datetime as dt

from fabula.billing.v1 import billing_pb2

from fabula_gateway.payments.schemas import (
    InvoicePage,
    InvoicePeriod,
    InvoicePublic,
    SubscriptionPublic,
)


def _time(message, field: str) -> dt.datetime | None:
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=dt.UTC)


def subscription_from_proto(reply: billing_pb2.Subscription) -> SubscriptionPublic:
    return SubscriptionPublic(
        plan=reply.plan,
        status=reply.status or "none",
        current_period_start=_time(reply, "current_period_start"),
        current_period_end=_time(reply, "current_period_end"),
        cancel_at_period_end=reply.cancel_at_period_end,
    )


def invoice_page_from_proto(reply: billing_pb2.ListInvoicesResponse) -> InvoicePage:
    return InvoicePage(
        items=[
            InvoicePublic(
                id=invoice.id,
                number=invoice.number or None,
                status=invoice.status,
                amount_paid=invoice.amount_paid,
                currency=invoice.currency,
                hosted_invoice_url=invoice.hosted_invoice_url or None,
                period=InvoicePeriod(
                    start=_time(invoice, "period_start"), end=_time(invoice, "period_end")
                ),
                created=invoice.created.ToDatetime(tzinfo=dt.UTC),
            )
            for invoice in reply.invoices
        ],
        next_cursor=reply.next_cursor or None,
    )
