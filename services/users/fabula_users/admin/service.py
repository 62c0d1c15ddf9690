"""Administration: listing users, (de)activating, granting superuser, and the
audit trail every admin action writes in the transaction of its change.

Every function takes the caller's session and never commits.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid

import grpc
from fabula_common.db import utcnow
from fabula_common.errors import Conflict, FabulaError, InvalidArgument, NotFound
from sqlalchemy import Select, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_users.accounts.models import RefreshToken, User
from fabula_users.accounts.service import normalise_email
from fabula_users.admin.models import AuditEntry

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
ACTION_MAX_LENGTH = 64
DETAIL_MAX_LENGTH = 1000
# details["via"] of an action done by a command rather than by a superuser.
VIA_COMMAND = "command"


class NotSuperuser(FabulaError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "not-superuser"


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"{what} not found") from None


def _page_size(limit: int) -> int:
    if limit == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"limit: must be 1 to {MAX_PAGE_SIZE}")
    return limit


def _encode_cursor(created_at: dt.datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, row_id = raw.split("|")
        return dt.datetime.fromisoformat(moment), uuid.UUID(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("cursor: not a cursor this API returned") from None


async def _page(
    session: AsyncSession, statement: Select, model: type, limit: int, cursor: str
) -> tuple[list, str]:
    """Newest first, keyset-paginated on (created_at, id)."""
    size = _page_size(limit)
    if cursor:
        statement = statement.where(
            tuple_(model.created_at, model.id) < tuple_(*_decode_cursor(cursor))
        )
    rows = list(
        await session.scalars(
            statement.order_by(model.created_at.desc(), model.id.desc()).limit(size + 1)
        )
    )
    next_cursor = ""
    if len(rows) > size:
        rows = rows[:size]
        next_cursor = _encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, next_cursor


async def require_superuser(session: AsyncSession, actor_id: str) -> User:
    try:
        parsed = uuid.UUID(actor_id)
    except ValueError:
        raise NotSuperuser("only superusers may do this") from None
    actor = await session.get(User, parsed)
    if actor is None or not actor.is_active or not actor.is_superuser:
        raise NotSuperuser("only superusers may do this")
    return actor


async def record(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID | None,
    action: str,
    target_user_id: uuid.UUID | None,
    details: dict[str, str],
) -> AuditEntry:
    entry = AuditEntry(
        id=uuid.uuid4(),
        actor_id=actor_id,
        action=action,
        target_user_id=target_user_id,
        details=details,
        created_at=utcnow(),
    )
    session.add(entry)
    await session.flush()
    return entry


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_users(
    session: AsyncSession, *, actor_id: str, query: str, limit: int, cursor: str
) -> tuple[list[User], str]:
    await require_superuser(session, actor_id)
    statement = select(User)
    query = query.strip()
    if query:
        pattern = f"%{_escape_like(query)}%"
        statement = statement.where(
            or_(User.email.ilike(pattern, escape="\\"), User.full_name.ilike(pattern, escape="\\"))
        )
    return await _page(session, statement, User, limit, cursor)


async def _change_user(
    session: AsyncSession, actor: User, user_id: str, **values: bool
) -> User:
    target = _uuid(user_id, "user")
    if target == actor.id:
        raise Conflict("an administrator cannot change their own account's status")
    user = await session.scalar(
        update(User)
        .where(User.id == target)
        .values(**values, updated_at=utcnow())
        .returning(User)
        .execution_options(populate_existing=True)
    )
    if user is None:
        raise NotFound("user not found")
    return user


def _reason(reason: str) -> dict[str, str]:
    reason = reason.strip()
    if len(reason) > DETAIL_MAX_LENGTH:
        raise InvalidArgument(f"reason: must be at most {DETAIL_MAX_LENGTH} characters")
    return {"reason": reason} if reason else {}


async def set_active(
    session: AsyncSession, *, actor_id: str, user_id: str, active: bool, reason: str
) -> User:
    actor = await require_superuser(session, actor_id)
    details = _reason(reason)
    user = await _change_user(session, actor, user_id, is_active=active)
    if not active:
        # Its sessions end now; access tokens and keys stop at the gateway
        # within its cache time (Authenticate answers UNAUTHENTICATED).
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    action = "user.reactivated" if active else "user.deactivated"
    await record(session, actor_id=actor.id, action=action, target_user_id=user.id, details=details)
    return user


async def set_superuser(
    session: AsyncSession, *, actor_id: str, user_id: str, superuser: bool, reason: str
) -> User:
    actor = await require_superuser(session, actor_id)
    details = _reason(reason)
    user = await _change_user(session, actor, user_id, is_superuser=superuser)
    action = "superuser.granted" if superuser else "superuser.revoked"
    await record(session, actor_id=actor.id, action=action, target_user_id=user.id, details=details)
    return user


async def record_action(
    session: AsyncSession,
    *,
    actor_id: str,
    action: str,
    target_user_id: str,
    details: dict[str, str],
) -> AuditEntry:
    actor = await require_superuser(session, actor_id)
    action = action.strip()
    if not action or len(action) > ACTION_MAX_LENGTH:
        raise InvalidArgument(f"action: must be 1 to {ACTION_MAX_LENGTH} characters")
    if any(len(value) > DETAIL_MAX_LENGTH for value in details.values()):
        raise InvalidArgument(f"details: values must be at most {DETAIL_MAX_LENGTH} characters")
    target = None
    if target_user_id:
        target = _uuid(target_user_id, "user")
        if await session.get(User, target) is None:
            raise NotFound("user not found")
    return await record(
        session, actor_id=actor.id, action=action, target_user_id=target, details=dict(details)
    )


async def list_audit(
    session: AsyncSession, *, actor_id: str, limit: int, cursor: str, target_user_id: str
) -> tuple[list[AuditEntry], str]:
    await require_superuser(session, actor_id)
    statement = select(AuditEntry)
    if target_user_id:
        try:
            target = uuid.UUID(target_user_id)
        except ValueError:
            raise InvalidArgument("target_user_id: must be a UUID") from None
        statement = statement.where(AuditEntry.target_user_id == target)
    return await _page(session, statement, AuditEntry, limit, cursor)


async def grant_superuser_by_command(session: AsyncSession, email: str) -> User:
    """`make superuser`: the operator's command, recorded as done by it."""
    user = await session.scalar(
        update(User)
        .where(User.email == normalise_email(email))
        .values(is_superuser=True, updated_at=utcnow())
        .returning(User)
    )
    if user is None:
        raise NotFound(f"no account with the email {email!r}")
    await record(
        session,
        actor_id=None,
        action="superuser.granted",
        target_user_id=user.id,
        details={"via": VIA_COMMAND},
    )
    return user
