"""Tables of the `users` schema."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Integer,
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
AVATAR_URL_MAX_LENGTH = 2048
LOCALES = ("en", "de")
DEFAULT_LOCALE = "en"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # Emails are stored normalised to lower case, so a plain unique
        # constraint is a case-insensitive one.
        CheckConstraint("email = lower(email)", name="email_lower_case"),
        CheckConstraint("locale IN ('en', 'de')", name="locale_known"),
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
    avatar_url: Mapped[str | None] = mapped_column(String(AVATAR_URL_MAX_LENGTH))
    birthdate: Mapped[dt.date | None] = mapped_column(Date)
    locale: Mapped[str] = mapped_column(String(2), server_default=DEFAULT_LOCALE)
    # Unset until the first login after registration.
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


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


class AccountToken(Base):
    """A single-use token sent by email (verify an address, reset a password),
    known only by its SHA-256."""

    __tablename__ = "account_tokens"
    __table_args__ = (
        CheckConstraint("purpose IN ('verify-email', 'reset-password')", name="purpose_known"),
        Index("ix_account_tokens_user_id", "user_id"),
        Index("ix_account_tokens_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.users.id", ondelete="CASCADE")
    )
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256
    # The address the token was sent to: a verification is for that address
    # only (the email may have changed since).
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class LoginFailures(Base):
    """Consecutive failed logins of one account or from one client address
    (`key` is a hash of either), counted within a window since the last one."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_last_failure_at", "last_failure_at"),)

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
