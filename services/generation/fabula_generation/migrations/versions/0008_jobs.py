"""Jobs: the Postgres-backed queue of long-form jobs, their stage checkpoints
and events; generations.attributes (facts for usage logs).

Revision ID: 0008_jobs
Revises: 0007_suggestions
Create Date: 2027-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_jobs"
down_revision = "0007_suggestions"
branch_labels = None
depends_on = None

SCHEMA = "generation"


def upgrade() -> None:
    op.add_column(
        "generations",
        sa.Column("attributes", postgresql.JSONB(), nullable=True),
        schema=SCHEMA,
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("brief", postgresql.JSONB(), nullable=False),
        sa.Column("target_words", sa.Integer(), nullable=False),
        sa.Column("parent_narrative_id", sa.String(64), nullable=True),
        sa.Column("revision", postgresql.JSONB(), nullable=True),
        sa.Column("stages", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("current_stage", sa.String(32), nullable=True),
        sa.Column("progress", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_reason", sa.String(64), nullable=True),
        sa.Column("estimated_cost_usd", sa.Numeric(18, 9), nullable=False),
        sa.Column("estimated_generations", sa.Integer(), nullable=False),
        sa.Column(
            "actual_cost_usd", sa.Numeric(18, 9), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("tokens_used", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("reservation_id", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column(
            "cancel_requested", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("last_sequence", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
            name="ck_jobs_status",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_jobs_user_id_idempotency_key"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_jobs_user_id_created_at", "jobs", ["user_id", "created_at"], schema=SCHEMA
    )
    op.create_index(
        "ix_jobs_claimable",
        "jobs",
        ["created_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.create_table(
        "job_stages",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(18, 9), nullable=False),
        sa.Column(
            "completed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            [f"{SCHEMA}.jobs.id"],
            name="fk_job_stages_job_id_jobs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_job_stages"),
        sa.UniqueConstraint("job_id", "name", name="uq_job_stages_job_id_name"),
        schema=SCHEMA,
    )
    op.create_table(
        "job_events",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(32), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            [f"{SCHEMA}.jobs.id"],
            name="fk_job_events_job_id_jobs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "sequence", name="pk_job_events"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("job_events", schema=SCHEMA)
    op.drop_table("job_stages", schema=SCHEMA)
    op.drop_index("ix_jobs_claimable", table_name="jobs", schema=SCHEMA)
    op.drop_index("ix_jobs_user_id_created_at", table_name="jobs", schema=SCHEMA)
    op.drop_table("jobs", schema=SCHEMA)
    op.drop_column("generations", "attributes", schema=SCHEMA)
