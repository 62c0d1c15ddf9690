"""Council conversations: users' plans (from billing's PlanChanged) for the
free plan's retention, and the original ids of imported conversations.

Revision ID: 0011_council_plans_imports
Revises: 0010_conversations
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_council_plans_imports"
down_revision: str | None = "0010_conversations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "stories"


def upgrade() -> None:
    op.create_table(
        "user_plans",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("plan", sa.String(100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_plans"),
        schema=SCHEMA,
    )
    op.add_column("conversations", sa.Column("import_source", sa.String(100)), schema=SCHEMA)
    op.add_column(
        "conversations", sa.Column("import_original_id", sa.String(255)), schema=SCHEMA
    )
    op.create_index(
        "uq_conversations_import",
        "conversations",
        ["user_id", "import_source", "import_original_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("import_source IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_conversations_import", table_name="conversations", schema=SCHEMA)
    op.drop_column("conversations", "import_original_id", schema=SCHEMA)
    op.drop_column("conversations", "import_source", schema=SCHEMA)
    op.drop_table("user_plans", schema=SCHEMA)
