"""All SQL of the users service's accounts. Like every repository in Fabula:
module functions taking the caller's session first; none commits."""

from __future__ import annotations

import datetime as dt
import uuid

from typing import Any

from fabula_common.db import utcnow
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_users.accounts.models import (
    AccountToken,
    LoginFailures,
    RefreshToken,
    RegistrationKey,
    User,
)

# --- Users ---------------------------------------------------------------------


async def create_user(
    session: AsyncSession, *, email: str, password_hash: str, full_name: str
) -> User | None:
    """The new user, or None when the email is taken (also by a concurrent
    registration: the unique constraint decides, without an error that
    would abort the transaction)."""
    statement = (
        insert(User)
        .values(id=uuid.uuid4(), email=email, password_hash=password_hash, full_name=full_name)
        .on_conflict_do_nothing(index_elements=[User.email])
        .returning(User)
    )
    return await session.scalar(statement)


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email))


async def set_password_hash(session: AsyncSession, user: User, password_hash: str) -> None:
    # By id: `user` may come from an earlier transaction (login verifies
    # the password between two).
    now = utcnow()
    await session.execute(
        update(User).where(User.id == user.id).values(password_hash=password_hash, updated_at=now)
    )
    user.password_hash, user.updated_at = password_hash, now


async def update_user(session: AsyncSession, user_id: uuid.UUID, **values: Any) -> User | None:
    """Set `values` on the user; the updated user, None when there is none."""
    return await session.scalar(
        update(User)
        .where(User.id == user_id)
        .values(**values, updated_at=utcnow())
        .returning(User)
        .execution_options(populate_existing=True)
    )


async def change_email(session: AsyncSession, user_id: uuid.UUID, email: str) -> User | None:
    """Set the email (now unverified); None when another account has it. The
    unique constraint decides (also against a concurrent change), in a
    savepoint so that its error does not abort the transaction."""
    try:
        async with session.begin_nested():
            return await update_user(session, user_id, email=email, is_verified=False)
    except IntegrityError:
        return None


async def touch_last_login(session: AsyncSession, user: User) -> None:
    now = utcnow()
    await session.execute(update(User).where(User.id == user.id).values(last_login_at=now))
    user.last_login_at = now


# --- Emailed single-use tokens ---------------------------------------------------


async def add_account_token(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    purpose: str,
    token_hash: str,
    email: str,
    expires_at: dt.datetime,
) -> None:
    session.add(
        AccountToken(
            id=uuid.uuid4(),
            user_id=user_id,
            purpose=purpose,
            token_hash=token_hash,
            email=email,
            expires_at=expires_at,
        )
    )
    await session.flush()


async def account_token_issued_since(
    session: AsyncSession, user_id: uuid.UUID, purpose: str, since: dt.datetime
) -> bool:
    return (
        await session.scalar(
            select(AccountToken.id)
            .where(
                AccountToken.user_id == user_id,
                AccountToken.purpose == purpose,
                AccountToken.created_at > since,
            )
            .limit(1)
        )
        is not None
    )


async def use_account_token(
    session: AsyncSession, purpose: str, token_hash: str
) -> AccountToken | None:
    """Mark the token used and return it; None when it is unknown, used or
    expired. One conditional statement: of two concurrent uses, one wins."""
    now = utcnow()
    return await session.scalar(
        update(AccountToken)
        .where(
            AccountToken.token_hash == token_hash,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(AccountToken)
        .execution_options(populate_existing=True)
    )


async def use_all_account_tokens(session: AsyncSession, user_id: uuid.UUID, purpose: str) -> int:
    """End every outstanding token of the user for `purpose` (superseded)."""
    result = await session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


async def delete_account_tokens_expired_before(session: AsyncSession, cutoff: dt.datetime) -> int:
    result = await session.execute(
        delete(AccountToken)
        .where(AccountToken.expires_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


# --- Login throttling ---------------------------------------------------------------


async def count_login_attempt(
    session: AsyncSession, key: str, *, limit: int, window: dt.timedelta
) -> int | None:
    """Count an attempt against `key` as a failure (undone by a success) and
    return the consecutive count, or None when `limit` failures within the
    window already refuse it (then nothing is counted). One statement: of
    concurrent attempts past the limit, none slips through."""
    now = utcnow()
    in_window = LoginFailures.last_failure_at > now - window
    statement = insert(LoginFailures).values(key=key, failures=1, last_failure_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[LoginFailures.key],
        set_={
            "failures": case((in_window, LoginFailures.failures + 1), else_=1),
            "last_failure_at": now,
        },
        where=~in_window | (LoginFailures.failures < limit),
    ).returning(LoginFailures.failures)
    return await session.scalar(statement)


async def login_refused_until(session: AsyncSession, key: str, window: dt.timedelta):
    last = await session.scalar(
        select(LoginFailures.last_failure_at).where(LoginFailures.key == key)
    )
    return None if last is None else last + window


async def forget_login_failures(session: AsyncSession, key: str) -> None:
    await session.execute(delete(LoginFailures).where(LoginFailures.key == key))


async def uncount_login_attempt(session: AsyncSession, key: str) -> None:
    """Take back one counted attempt (it was not a failure)."""
    await session.execute(
        update(LoginFailures)
        .where(LoginFailures.key == key)
        .values(failures=func.greatest(LoginFailures.failures - 1, 0))
    )


async def delete_login_failures_before(session: AsyncSession, cutoff: dt.datetime) -> int:
    result = await session.execute(
        delete(LoginFailures)
        .where(LoginFailures.last_failure_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


# --- Refresh tokens --------------------------------------------------------------


async def add_refresh_token(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    token_hash: str,
    expires_at: dt.datetime,
) -> RefreshToken:
    token = RefreshToken(
        id=uuid.uuid4(),
        user_id=user_id,
        family_id=family_id,
        token_hash=token_hash,
        expires_at=expires_at,
    )
    session.add(token)
    await session.flush()
    return token


async def get_refresh_token_for_update(
    session: AsyncSession, token_hash: str
) -> RefreshToken | None:
    """Locks the row until the transaction ends: of two concurrent
    refreshes with one token, the second waits and then sees it revoked."""
    return await session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == token_hash)
        .with_for_update()
        # A row cached by this session must not hide the locked version.
        .execution_options(populate_existing=True)
    )


async def mark_rotated(
    session: AsyncSession,
    token: RefreshToken,
    replaced_by: RefreshToken,
    *,
    replacement_sealed: bytes | None,
    replacement_expires_at: dt.datetime | None,
) -> None:
    token.revoked_at = utcnow()
    token.replaced_by_id = replaced_by.id
    token.replacement_sealed = replacement_sealed
    token.replacement_expires_at = replacement_expires_at
    await session.flush()


async def get_refresh_token_by_id_for_update(
    session: AsyncSession, token_id: uuid.UUID
) -> RefreshToken | None:
    return await session.scalar(
        select(RefreshToken)
        .where(RefreshToken.id == token_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def revoke_token_family(session: AsyncSession, family_id: uuid.UUID) -> int:
    """Revoke every live token of the family and forget every sealed
    replacement (no grace for a family taken for stolen); return how many
    tokens were live."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.replacement_sealed.is_not(None))
        .values(replacement_sealed=None, replacement_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


async def revoke_user_refresh_tokens(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Revoke every live refresh token of the user, and every sealed
    replacement (no grace window brings one back)."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.replacement_sealed.is_not(None))
        .values(replacement_sealed=None, replacement_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


async def clear_replacements_expired_before(session: AsyncSession, cutoff: dt.datetime) -> int:
    """Forget sealed replacements whose grace window has ended."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.replacement_expires_at < cutoff)
        .values(replacement_sealed=None, replacement_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


async def delete_refresh_tokens_expired_before(session: AsyncSession, cutoff: dt.datetime) -> int:
    result = await session.execute(
        delete(RefreshToken)
        .where(RefreshToken.expires_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


# --- Registration idempotency keys ----------------------------------------------


async def get_registration_key(
    session: AsyncSession, key_hash: str, now: dt.datetime
) -> RegistrationKey | None:
    """The unexpired record of a registration made with this key, if any."""
    return await session.scalar(
        select(RegistrationKey)
        .where(RegistrationKey.key_hash == key_hash, RegistrationKey.expires_at > now)
        .execution_options(populate_existing=True)
    )


async def add_registration_key(
    session: AsyncSession,
    *,
    key_hash: str,
    request_hash: str,
    user_id: uuid.UUID,
    now: dt.datetime,
    expires_at: dt.datetime,
) -> bool:
    """Record the key; False when an unexpired record of it exists (also one
    a concurrent registration wrote: the primary key decides). An expired
    record is replaced."""
    statement = insert(RegistrationKey).values(
        key_hash=key_hash,
        request_hash=request_hash,
        user_id=user_id,
        created_at=now,
        expires_at=expires_at,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[RegistrationKey.key_hash],
        set_={
            "request_hash": statement.excluded.request_hash,
            "user_id": statement.excluded.user_id,
            "created_at": statement.excluded.created_at,
            "expires_at": statement.excluded.expires_at,
        },
        where=RegistrationKey.expires_at <= now,
    ).returning(RegistrationKey.key_hash)
    return await session.scalar(statement) is not None


async def delete_registration_keys_expired_before(
    session: AsyncSession, cutoff: dt.datetime
) -> int:
    result = await session.execute(
        delete(RegistrationKey)
        .where(RegistrationKey.expires_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount
