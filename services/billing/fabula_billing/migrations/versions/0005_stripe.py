"""Stripe: customers, subscriptions, invoices, the webhook inbox, plan changes,
and an outbox for PlanChanged.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from fabula_common.messaging.migrations import create_outbox, drop_outbox
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "billing"


def _timestamp(name: str, *, nullable: bool = False, default_now: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default_now else None,
    )


def upgrade() -> None:
    op.create_table(
        "stripe_customers",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        _timestamp("created_at", default_now=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_stripe_customers"),
        sa.UniqueConstraint("customer_id", name="uq_stripe_customers_customer_id"),
        schema=SCHEMA,
    )
    op.create_table(
        "stripe_subscriptions",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("plan", sa.String(32), nullable=True),
        sa.Column("price_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        _timestamp("current_period_start", nullable=True),
        _timestamp("current_period_end", nullable=True),
        sa.Column(
            "cancel_at_period_end", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        _timestamp("stripe_created_at"),
        _timestamp("synced_at", default_now=True),
        sa.PrimaryKeyConstraint("id", name="pk_stripe_subscriptions"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_stripe_subscriptions_user_id", "stripe_subscriptions", ["user_id"], schema=SCHEMA
    )
    op.create_table(
        "stripe_invoices",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.String(255), nullable=True),
        sa.Column("number", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("hosted_invoice_url", sa.Text(), nullable=True),
        _timestamp("period_start", nullable=True),
        _timestamp("period_end", nullable=True),
        _timestamp("created"),
        _timestamp("event_created"),
        sa.PrimaryKeyConstraint("id", name="pk_stripe_invoices"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_stripe_invoices_user_id_created",
        "stripe_invoices",
        ["user_id", "created", "id"],
        schema=SCHEMA,
    )
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        _timestamp("created"),
        _timestamp("received_at", default_now=True),
        _timestamp("handled_at", nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _timestamp("next_attempt_at", default_now=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _timestamp("parked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_stripe_events"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_stripe_events_due",
        "stripe_events",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("handled_at IS NULL AND parked_at IS NULL"),
    )
    op.create_table(
        "plan_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("previous_plan", sa.String(32), nullable=False),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), server_default=sa.text("''"), nullable=False),
        _timestamp("changed_at", default_now=True),
        sa.PrimaryKeyConstraint("id", name="pk_plan_changes"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_plan_changes_user_id_changed_at",
        "plan_changes",
        ["user_id", "changed_at"],
        schema=SCHEMA,
    )
    create_outbox(SCHEMA)


def downgrade() -> None:
    drop_outbox(SCHEMA)
    op.drop_index("ix_plan_changes_user_id_changed_at", table_name="plan_changes", schema=SCHEMA)
    op.drop_table("plan_changes", schema=SCHEMA)
    op.drop_index("ix_stripe_events_due", table_name="stripe_events", schema=SCHEMA)
    op.drop_table("stripe_events", schema=SCHEMA)
    op.drop_index("ix_stripe_invoices_user_id_created", table_name="stripe_invoices", schema=SCHEMA)
    op.drop_table("stripe_invoices", schema=SCHEMA)
    op.drop_index("ix_stripe_subscriptions_user_id", table_name="stripe_subscriptions", schema=SCHEMA)
    op.drop_table("stripe_subscriptions", schema=SCHEMA)
    op.drop_table("stripe_customers", schema=SCHEMA)
