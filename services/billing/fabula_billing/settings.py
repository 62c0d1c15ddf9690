"""Billing configuration: plans, the default plan and reservation timing."""

from __future__ import annotations

from decimal import Decimal

from fabula_common.settings import ServiceSettings, env
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict


class Plan(BaseModel):
    """Per-period limits of a plan; `None` means unlimited."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    generations_limit: int | None = Field(ge=0)
    cost_limit_usd: Decimal | None = Field(ge=0, max_digits=18, decimal_places=9)


DEFAULT_PLANS: dict[str, Plan] = {
    "free": Plan(generations_limit=5, cost_limit_usd=Decimal(10)),
    "pro": Plan(generations_limit=50, cost_limit_usd=Decimal(100)),
    "enterprise": Plan(generations_limit=None, cost_limit_usd=None),
}


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_")

    database_url: str = "postgresql://fabula_billing:fabula_billing@127.0.0.1:5432/fabula"
    grpc_port: int = 50054

    # BILLING_PLANS_JSON, e.g. {"free": {"generations_limit": 5, "cost_limit_usd": "10"}}.
    plans: dict[str, Plan] = Field(
        default_factory=lambda: dict(DEFAULT_PLANS), validation_alias="BILLING_PLANS_JSON"
    )
    default_plan: str = "free"
    # Applied when a caller reserves without an estimate of its own.
    default_generation_estimate_usd: Decimal = Field(Decimal("0.01"), ge=0, decimal_places=9)
    # Reservations are settled by events, however late. One still waiting for
    # its usage after this long is given back only if generation's durable
    # record says no call was ever made under it; otherwise it is kept and
    # looked at again after as long. Safe at any length: it only bounds how
    # long an orphaned reservation (its caller gave up) holds quota.
    reservation_ttl_seconds: int = Field(900, ge=1)
    reservation_sweep_seconds: float = Field(30.0, gt=0)
    # A fixed pool, at the other services' maximum (5 + 10). SQLAlchemy closes
    # an overflow connection when it comes back to a pool whose idle slots
    # are full, which under a steady load above DB_POOL_SIZE is all the time:
    # reserving at 50-way concurrency opened ~20 connections a second, each
    # a new Postgres backend (docs/architecture.md, Quota).
    db_pool_size: int = env("DB_POOL_SIZE", 15, ge=1)
    db_max_overflow: int = env("DB_MAX_OVERFLOW", 0, ge=0)

    # Stripe. Without an API key the payment methods answer "payments not
    # configured" and everything else works.
    stripe_api_key: SecretStr | None = env("STRIPE_API_KEY", None)
    stripe_webhook_secret: SecretStr | None = env("STRIPE_WEBHOOK_SECRET", None)
    # Where the Stripe API is reached (a local stand-in in tests).
    stripe_api_base: str = env("STRIPE_API_BASE", "https://api.stripe.com")
    stripe_price_pro: str | None = env("STRIPE_PRICE_PRO", None)
    stripe_price_enterprise: str | None = env("STRIPE_PRICE_ENTERPRISE", None)
    # Deadline of one call to Stripe (connect, send and read the answer).
    stripe_timeout_seconds: float = env("STRIPE_TIMEOUT_SECONDS", 10.0, gt=0)
    # Stripe's signature tolerance: older signed deliveries are refused (replays).
    stripe_webhook_tolerance_seconds: int = env("STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300, ge=1)
    # Where Checkout and the portal send the user back when the caller names no URL.
    checkout_success_url: str = "http://127.0.0.1:8000/v1/billing/subscription?checkout=success"
    checkout_cancel_url: str = "http://127.0.0.1:8000/v1/billing/subscription?checkout=cancel"
    portal_return_url: str = "http://127.0.0.1:8000/v1/billing/subscription"
    # A webhook event whose handling fails is retried after base * 2^(n-1)
    # seconds (at most max), and parked for an operator after this many attempts.
    stripe_event_max_attempts: int = Field(12, ge=1)
    stripe_event_retry_base_seconds: float = Field(1.0, gt=0)
    stripe_event_retry_max_seconds: float = Field(600.0, gt=0)
    stripe_event_poll_seconds: float = Field(5.0, gt=0)

    def stripe_prices(self) -> dict[str, str]:
        """plan -> Stripe price id, for the plans that can be bought."""
        prices = {"pro": self.stripe_price_pro, "enterprise": self.stripe_price_enterprise}
        return {plan: price for plan, price in prices.items() if price}

    @model_validator(mode="after")
    def _check_plans(self) -> Settings:
        if not self.plans:
            raise ValueError("BILLING_PLANS_JSON must define at least one plan")
        too_long = [name for name in self.plans if not 0 < len(name) <= 32]
        if too_long:
            raise ValueError(f"plan names must be 1-32 characters: {too_long}")
        if self.default_plan not in self.plans:
            raise ValueError(
                f"BILLING_DEFAULT_PLAN {self.default_plan!r} is not one of the configured plans "
                f"{sorted(self.plans)}"
            )
        unknown = [plan for plan in self.stripe_prices() if plan not in self.plans]
        if unknown:
            raise ValueError(f"STRIPE_PRICE_* set for plans not in BILLING_PLANS_JSON: {unknown}")
        # Expiring a reservation while its model call may still be running
        # would give the quota back before the usage arrives: overspending.
        if self.reservation_ttl_seconds <= self.generation_deadline_seconds:
            raise ValueError(
                f"BILLING_RESERVATION_TTL_SECONDS ({self.reservation_ttl_seconds}) must exceed "
                f"GENERATION_DEADLINE_SECONDS ({self.generation_deadline_seconds:g})"
            )
        return self
