"""Each pending generation names the stories process that claimed it, so a
restarted process discards its previous incarnation's claims at startup.

Revision ID: 0005
Revises: 0004
Create Date: 2025-01-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "stories"


def upgrade() -> None:
    # Nullable without default: adding it rewrites no rows. A claim of the
    # previous release names no owner and is left to the sweeper.
    op.add_column(
        "pending_generations", sa.Column("owner", sa.String(255), nullable=True), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("pending_generations", "owner", schema=SCHEMA)
