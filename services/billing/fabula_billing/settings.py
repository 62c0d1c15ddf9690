"""Billing configuration: plans, the default plan and reservation timing."""

from __future__ import annotations

from decimal import Decimal

from fabula_common.settings import ServiceSettings, env
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict


class Plan(BaseModel):
    """Per-period limits of a plan; `None` means unlimited."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    generations_limit: int | None = Field(ge=0)
    cost_limit_usd: Decimal | None = Field(ge=0, max_digits=18, decimal_places=9)


DEFAULT_PLANS: dict[str, Plan] = {
    "free": Plan(generations_limit=5, cost_limit_usd=Decimal("10")),
    "pro": Plan(generations_limit=50, cost_limit_usd=Decimal("100")),
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
        # Expiring a reservation while its model call may still be running
        # would give the quota back before the usage arrives: overspending.
        if self.reservation_ttl_seconds <= self.generation_deadline_seconds:
            raise ValueError(
                f"BILLING_RESERVATION_TTL_SECONDS ({self.reservation_ttl_seconds}) must exceed "
                f"GENERATION_DEADLINE_SECONDS ({self.generation_deadline_seconds:g})"
            )
        return self
