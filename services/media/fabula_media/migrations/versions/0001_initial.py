"""Photos, their renditions, the outbox and the inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from fabula_common.messaging.migrations import create_outbox, drop_outbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "media"


def upgrade() -> None:
    op.create_table(
        "photos",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("object_key", sa.String(512), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "status_changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'uploaded', 'processing', 'completed', 'failed')",
            name="ck_photos_status_known",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_photos"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_photos_user_id_created_at", "photos", ["user_id", "created_at", "id"], schema=SCHEMA
    )
    op.create_index(
        "ix_photos_unfinished",
        "photos",
        ["status_changed_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('uploaded', 'processing')"),
    )
    op.create_table(
        "renditions",
        sa.Column("photo_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("object_key", sa.String(512), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"],
            [f"{SCHEMA}.photos.id"],
            name="fk_renditions_photo_id_photos",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("photo_id", "name", name="pk_renditions"),
        schema=SCHEMA,
    )
    create_outbox(SCHEMA)
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id", name="pk_processed_events"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("processed_events", schema=SCHEMA)
    drop_outbox(SCHEMA)
    op.drop_table("renditions", schema=SCHEMA)
    op.drop_index("ix_photos_unfinished", table_name="photos", schema=SCHEMA)
    op.drop_index("ix_photos_user_id_created_at", table_name="photos", schema=SCHEMA)
    op.drop_table("photos", schema=SCHEMA)
