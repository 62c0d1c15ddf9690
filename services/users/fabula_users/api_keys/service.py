"""API keys: creation, listing, revocation, and Authenticate (for the gateway).

A key is `fab_<lookup id>_<secret>`. The lookup id (public, unique) finds the
row; the SHA-256 of the whole key (high entropy, so a fast hash is enough) is
compared in constant time. Only the hash is stored: the key is shown once.
Every function takes the caller's session and never commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid

from fabula_common.db import utcnow
from fabula_common.errors import InvalidArgument, NotFound, Unauthenticated
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_users.accounts.models import User
from fabula_users.accounts.service import account_deactivated
from fabula_users.api_keys.models import API_KEY_NAME_MAX_LENGTH, ApiKey

KEY_PREFIX = "fab_"
LOOKUP_ID_BYTES = 6  # 12 hex characters
SECRET_BYTES = 32
PREFIX_LENGTH = len(KEY_PREFIX) + 2 * LOOKUP_ID_BYTES
SCOPES = ("read", "write")
# A key's last use is written at most this often (Authenticate is cached by
# the gateway anyway).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
INVALID_API_KEY = "invalid, revoked or expired API key"


def parse_user_id(user_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(user_id)
    except ValueError:
        raise NotFound("user not found") from None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """(prefix, key): the public part and the whole secret."""
    prefix = KEY_PREFIX + secrets.token_hex(LOOKUP_ID_BYTES)
    return prefix, f"{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"


def prefix_of(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX) or len(key) <= PREFIX_LENGTH + 1:
        return None
    if key[PREFIX_LENGTH] != "_":
        return None
    return key[:PREFIX_LENGTH]


def normalise_scopes(scopes: list[str]) -> list[str]:
    if not scopes:
        raise InvalidArgument("scopes: at least one of 'read', 'write' is required")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidArgument(f"scopes: unknown scope {unknown[0]!r} (use 'read' or 'write')")
    return [scope for scope in SCOPES if scope in scopes]


def normalise_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise InvalidArgument("name: must not be empty")
    if "\x00" in name:
        raise InvalidArgument("name: must not contain NUL characters")
    if len(name) > API_KEY_NAME_MAX_LENGTH:
        raise InvalidArgument(f"name: must be at most {API_KEY_NAME_MAX_LENGTH} characters")
    return name


async def create(
    session: AsyncSession,
    *,
    user_id: str,
    name: str,
    scopes: list[str],
    expires_at: dt.datetime | None,
) -> tuple[ApiKey, str]:
    name = normalise_name(name)
    scopes = normalise_scopes(list(scopes))
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise InvalidArgument("expires_at: must be in the future")
    user = await session.get(User, parse_user_id(user_id))
    if user is None:
        raise NotFound("user not found")
    if not user.is_active:
        raise account_deactivated()
    prefix, key = new_key()
    api_key = ApiKey(
        id=uuid.uuid4(),
        user_id=user.id,
        name=name,
        prefix=prefix,
        key_hash=hash_key(key),
        scopes=scopes,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(api_key)
    await session.flush()
    return api_key, key


async def list_for_user(session: AsyncSession, user_id: str) -> list[ApiKey]:
    rows = await session.scalars(
        select(ApiKey)
        .where(ApiKey.user_id == parse_user_id(user_id))
        .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    )
    return list(rows)


async def revoke(session: AsyncSession, *, user_id: str, api_key_id: str) -> None:
    """Revoke one of the user's keys; revoking it again changes nothing.
    NOT_FOUND for a key that is not the user's (or none at all)."""
    try:
        key_id = uuid.UUID(api_key_id)
    except ValueError:
        raise NotFound("API key not found") from None
    api_key = await session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == parse_user_id(user_id))
    )
    if api_key is None:
        raise NotFound("API key not found")
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        await session.flush()


async def authenticate_key(session: AsyncSession, key: str) -> tuple[ApiKey, User]:
    """The live key and its active owner; Unauthenticated otherwise."""
    prefix = prefix_of(key)
    api_key = None
    if prefix is not None:
        api_key = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    # Compared even without a row, so timing does not tell a known prefix.
    stored_hash = api_key.key_hash if api_key is not None else "0" * 64
    if not hmac.compare_digest(stored_hash, hash_key(key)) or api_key is None:
        raise Unauthenticated(INVALID_API_KEY, reason="invalid-api-key")
    now = utcnow()
    if api_key.revoked_at is not None or (
        api_key.expires_at is not None and api_key.expires_at <= now
    ):
        raise Unauthenticated(INVALID_API_KEY, reason="invalid-api-key")
    user = await session.get(User, api_key.user_id)
    if user is None or not user.is_active:
        raise account_deactivated()
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == api_key.id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    return api_key, user


async def authenticate_user(session: AsyncSession, user_id: str) -> User:
    """The account of a verified access token, if it may still act."""
    try:
        parsed = uuid.UUID(user_id)
    except ValueError:
        raise Unauthenticated("unknown account", reason="unknown-account") from None
    user = await session.get(User, parsed)
    if user is None:
        raise Unauthenticated("unknown account", reason="unknown-account")
    if not user.is_active:
        raise account_deactivated()
    return user
