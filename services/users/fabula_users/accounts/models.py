"""Tables of the `users` schema."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Uuid,
    false,
    func,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from fabula_users.database import Base

EMAIL_MAX_LENGTH = 254  # RFC 5321 path limit, as enforced by email-validator
FULL_NAME_MAX_LENGTH = 200


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # Emails are stored normalised to lower case, so a plain unique
        # constraint is a case-insensitive one.
        CheckConstraint("email = lower(email)", name="email_lower_case"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    # None for an account made by signing in with an identity provider:
    # it has no password until one is set (password login fails cleanly).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(FULL_NAME_MAX_LENGTH), server_default="")
    is_verified: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Administration (migration 0004_keys_admin): a deactivated account cannot
    # sign in and its tokens and API keys stop working.
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    is_superuser: Mapped[bool] = mapped_column(Boolean, server_default=false())


class RefreshToken(Base):
    """One opaque refresh token, known only by its SHA-256. Every token that
    descends from one login by rotation shares that login's family_id."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_family_id", "family_id"),
        Index("ix_refresh_tokens_user_id", "user_id"),
        Index("ix_refresh_tokens_expires_at", "expires_at"),
        Index(
            "ix_refresh_tokens_replacement_expires_at",
            "replacement_expires_at",
            postgresql_where=text("replacement_expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.users.id", ondelete="CASCADE")
    )
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The token this one was rotated into (None if revoked otherwise or live).
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # For the grace window after rotation: the replacement token, sealed with
    # a key derived from this (old) token, which is never stored, so only its
    # holder can open it (accounts.sealing). Cleared when the window ends.
    replacement_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    replacement_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class RegistrationKey(Base):
    """An Idempotency-Key a registration was made with, known only by its
    SHA-256, for retries after a lost answer."""

    __tablename__ = "registration_keys"
    __table_args__ = (Index("ix_registration_keys_expires_at", "expires_at"),)

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex SHA-256
    # HMAC of the request's email and full name under the key (the password
    # is checked against the account's argon2 hash instead).
    request_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.users.id", ondelete="CASCADE")
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
