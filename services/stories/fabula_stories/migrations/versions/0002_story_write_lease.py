"""The write lease of a story: one segment is written at a time.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "stories"


def upgrade() -> None:
    # Nullable without default: adding it rewrites no rows and takes the lock briefly.
    op.add_column(
        "stories",
        sa.Column("writing_until", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("stories", "writing_until", schema=SCHEMA)
