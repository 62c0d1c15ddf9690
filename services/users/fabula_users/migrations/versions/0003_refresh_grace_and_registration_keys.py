"""Refresh-token grace window (the sealed replacement of a rotated token) and
Idempotency-Keys of registrations.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "users"


def upgrade() -> None:
    op.add_column(
        "refresh_tokens",
        sa.Column("replacement_sealed", sa.LargeBinary(), nullable=True),
        schema=SCHEMA,
    )
    op.add_column(
        "refresh_tokens",
        sa.Column("replacement_expires_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_refresh_tokens_replacement_expires_at",
        "refresh_tokens",
        ["replacement_expires_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("replacement_expires_at IS NOT NULL"),
    )
    op.create_table(
        "registration_keys",
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            [f"{SCHEMA}.users.id"],
            name="fk_registration_keys_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_hash", name="pk_registration_keys"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_registration_keys_expires_at", "registration_keys", ["expires_at"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_registration_keys_expires_at", table_name="registration_keys", schema=SCHEMA)
    op.drop_table("registration_keys", schema=SCHEMA)
    op.drop_index(
        "ix_refresh_tokens_replacement_expires_at", table_name="refresh_tokens", schema=SCHEMA
    )
    op.drop_column("refresh_tokens", "replacement_expires_at", schema=SCHEMA)
    op.drop_column("refresh_tokens", "replacement_sealed", schema=SCHEMA)
