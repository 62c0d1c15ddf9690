"""jobs.child_safe: a job queued for a child-safe account runs child-safe.

Revision ID: 0009_job_child_safe
Revises: 0008_jobs
Create Date: 2027-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_job_child_safe"
down_revision = "0008_jobs"
branch_labels = None
depends_on = None

SCHEMA = "generation"


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column("child_safe", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("jobs", "child_safe", schema=SCHEMA)
