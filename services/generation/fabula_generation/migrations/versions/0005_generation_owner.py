"""Generations name the process instance serving them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "generation"


def upgrade() -> None:
    # Rows written before: no owner, settled by the sweeper as before.
    op.add_column("generations", sa.Column("owner", sa.String(255)), schema=SCHEMA)
    op.create_index(
        "ix_generations_started_owner",
        "generations",
        ["owner"],
        schema=SCHEMA,
        postgresql_where=sa.text("outcome = 'started'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_generations_started_owner",
        table_name="generations",
        schema=SCHEMA,
        postgresql_where=sa.text("outcome = 'started'"),
    )
    op.drop_column("generations", "owner", schema=SCHEMA)
