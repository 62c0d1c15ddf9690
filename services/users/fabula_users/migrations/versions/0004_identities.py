"""Sign-in with identity providers: linked identities, pending sign-ins;
accounts without a password; verified emails.

Revision ID: 0004_identities
Revises: 0003
Create Date: 2025-01-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_identities"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "users"


def upgrade() -> None:
    op.alter_column("users", "password_hash", nullable=True, schema=SCHEMA)
    op.add_column(
        "users",
        sa.Column("is_verified", sa.Boolean(), server_default=sa.false(), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "identities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("email", sa.String(254), server_default="", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            [f"{SCHEMA}.users.id"],
            name="fk_identities_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_identities"),
        sa.UniqueConstraint("provider", "subject", name="uq_identities_provider_subject"),
        schema=SCHEMA,
    )
    op.create_index("ix_identities_user_id", "identities", ["user_id"], schema=SCHEMA)
    op.create_table(
        "pending_sign_ins",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("redirect_uri", sa.String(2000), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name="pk_pending_sign_ins"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_pending_sign_ins_expires_at", "pending_sign_ins", ["expires_at"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_pending_sign_ins_expires_at", table_name="pending_sign_ins", schema=SCHEMA)
    op.drop_table("pending_sign_ins", schema=SCHEMA)
    op.drop_index("ix_identities_user_id", table_name="identities", schema=SCHEMA)
    op.drop_table("identities", schema=SCHEMA)
    op.drop_column("users", "is_verified", schema=SCHEMA)
    # Accounts without a password cannot survive going back.
    op.execute(f"DELETE FROM {SCHEMA}.users WHERE password_hash IS NULL")
    op.alter_column("users", "password_hash", nullable=False, schema=SCHEMA)
