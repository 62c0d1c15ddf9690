"""Plans bought through Stripe: requests and responses."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

SubscriptionStatus = Literal[
    "none",
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "unpaid",
    "paused",
    "canceled",
]


class CheckoutCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"plan": "pro"}]}
    )

    plan: Literal["pro", "enterprise"]
    success_url: AnyHttpUrl | None = Field(
        None, description="Where Stripe sends the user after paying; billing's default if unset."
    )
    cancel_url: AnyHttpUrl | None = Field(
        None, description="Where Stripe sends the user who gives up; billing's default if unset."
    )


class CheckoutPublic(BaseModel):
    checkout_url: str = Field(description="Send the user here (Stripe Checkout).")
    session_id: str


class PortalCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"return_url": "https://app.example/account"}]},
    )

    return_url: AnyHttpUrl | None = Field(
        None, description="Where the portal sends the user back; billing's default if unset."
    )


class PortalPublic(BaseModel):
    url: str = Field(description="Send the user here (Stripe's customer portal).")


class SubscriptionPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "plan": "pro",
                    "status": "active",
                    "current_period_start": "2026-11-30T10:00:00Z",
                    "current_period_end": "2026-12-30T10:00:00Z",
                    "cancel_at_period_end": False,
                }
            ]
        }
    )

    plan: str = Field(description="The plan the account is on now.")
    status: SubscriptionStatus = Field(description="Stripe's status; `none` without a subscription.")
    current_period_start: dt.datetime | None
    current_period_end: dt.datetime | None
    cancel_at_period_end: bool = Field(
        description="The plan stays until current_period_end, then returns to free."
    )


class InvoicePeriod(BaseModel):
    start: dt.datetime | None
    end: dt.datetime | None


class InvoicePublic(BaseModel):
    id: str
    number: str | None
    status: str = Field(description="Stripe's: draft, open, paid, uncollectible or void.")
    amount_paid: int = Field(description="In the currency's smallest unit (e.g. cents).")
    currency: str
    hosted_invoice_url: str | None
    period: InvoicePeriod
    created: dt.datetime


class InvoicePage(BaseModel):
    items: list[InvoicePublic] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class WebhookReceived(BaseModel):
    received: bool = True
    event_id: str
    duplicate: bool = Field(description="Already received before: nothing more happens.")
