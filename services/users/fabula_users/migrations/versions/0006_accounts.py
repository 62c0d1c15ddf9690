"""Profiles (verified flag, avatar, birthdate, locale, last login), emailed
single-use tokens, login failure counts and the mail outbox.

Revision ID: 0004_accounts
Revises: 0004_keys_admin
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_accounts"
down_revision: str | None = "0004_keys_admin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "users"


def upgrade() -> None:
    op.add_column("users", sa.Column("avatar_url", sa.String(2048), nullable=True), schema=SCHEMA)
    op.add_column("users", sa.Column("birthdate", sa.Date(), nullable=True), schema=SCHEMA)
    op.add_column(
        "users",
        sa.Column("locale", sa.String(2), server_default="en", nullable=False),
        schema=SCHEMA,
    )
    op.add_column(
        "users",
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.create_check_constraint(
        op.f("ck_users_locale_known"), "users", "locale IN ('en', 'de')", schema=SCHEMA
    )

    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "purpose IN ('verify-email', 'reset-password')",
            name="ck_account_tokens_purpose_known",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            [f"{SCHEMA}.users.id"],
            name="fk_account_tokens_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_account_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_account_tokens_token_hash"),
        schema=SCHEMA,
    )
    op.create_index("ix_account_tokens_user_id", "account_tokens", ["user_id"], schema=SCHEMA)
    op.create_index(
        "ix_account_tokens_expires_at", "account_tokens", ["expires_at"], schema=SCHEMA
    )

    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_login_failures"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_login_failures_last_failure_at", "login_failures", ["last_failure_at"], schema=SCHEMA
    )

    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_mail_outbox"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_mail_outbox_next_attempt_at",
        "mail_outbox",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_mail_outbox_next_attempt_at", table_name="mail_outbox", schema=SCHEMA)
    op.drop_table("mail_outbox", schema=SCHEMA)
    op.drop_index(
        "ix_login_failures_last_failure_at", table_name="login_failures", schema=SCHEMA
    )
    op.drop_table("login_failures", schema=SCHEMA)
    op.drop_index("ix_account_tokens_expires_at", table_name="account_tokens", schema=SCHEMA)
    op.drop_index("ix_account_tokens_user_id", table_name="account_tokens", schema=SCHEMA)
    op.drop_table("account_tokens", schema=SCHEMA)
    op.drop_constraint(op.f("ck_users_locale_known"), "users", type_="check", schema=SCHEMA)
    for column in ("last_login_at", "locale", "birthdate", "avatar_url"):
        op.drop_column("users", column, schema=SCHEMA)
