"""The usage ledger records what each model call was for and about.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "billing"
# Entries recorded before events carried a purpose and a subject.
_EARLIER = {"purpose": "unspecified", "subject_kind": "", "subject_id": ""}


def upgrade() -> None:
    for column, earlier in _EARLIER.items():
        op.add_column(
            "usage_ledger",
            sa.Column(column, sa.String(), nullable=False, server_default=earlier),
            schema=SCHEMA,
        )
        # The default only fills the rows already there; new ones name their own.
        op.alter_column("usage_ledger", column, server_default=None, schema=SCHEMA)


def downgrade() -> None:
    for column in reversed(_EARLIER):
        op.drop_column("usage_ledger", column, schema=SCHEMA)
