"""Tombstones of deleted users, for the services that consume UserDeleted.

Events of one user arrive in any order, so a service may hear of a deleted
user after it applied UserDeleted (a late UsageRecorded, a request made with
an access token issued before the deletion). Its `deleted_users` table
remembers who was deleted, so nothing of theirs is created again. The user's
id itself is not kept: after a deletion no table may hold it, so the
tombstone is keyed by the id's SHA-256, which answers "was this id deleted?"
and names no one.

Deleting a user's data and creating data for that user are serialised by a
transaction-scoped advisory lock on the user: creators take it shared and
check the tombstone, the deletion takes it exclusively before it writes the
tombstone and deletes, so no row is created behind the deletion's back.
"""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import Column, DateTime, MetaData, String, Table, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

# The advisory lock's first key: our locks on users, apart from any other.
_LOCK_CLASS = 0x0FAB_0DE1


def deleted_users_table(metadata: MetaData) -> Table:
    return Table(
        "deleted_users",
        metadata,
        Column("user_id_sha256", String(64), primary_key=True),
        Column("deleted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def user_digest(user_id: uuid.UUID | str) -> str:
    return hashlib.sha256(str(user_id).lower().encode()).hexdigest()


async def _lock(session: AsyncSession, user_id: uuid.UUID | str, *, shared: bool) -> None:
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    # hashtext gives the int4 second key; a collision only serialises two users.
    await session.execute(
        text(f"SELECT {function}(:lock_class, hashtext(:user_id))"),
        {"lock_class": _LOCK_CLASS, "user_id": str(user_id).lower()},
    )


async def is_deleted(session: AsyncSession, table: Table, user_id: uuid.UUID | str) -> bool:
    """Whether the user was deleted, holding the user's lock shared until the
    transaction ends: a deletion cannot begin before what this transaction
    creates is committed (and then sees it)."""
    await _lock(session, user_id, shared=True)
    found = await session.execute(
        select(table.c.user_id_sha256).where(table.c.user_id_sha256 == user_digest(user_id))
    )
    return found.first() is not None


async def deleted_among(
    session: AsyncSession, table: Table, user_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    """is_deleted for a batch: which of these users were deleted, holding
    each one's lock shared until the transaction ends (taken in one
    statement, in a fixed order)."""
    if not user_ids:
        return set()
    keys = sorted({str(user_id).lower() for user_id in user_ids})
    await session.execute(
        text(
            "SELECT pg_advisory_xact_lock_shared(:lock_class, hashtext(k)) "
            "FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k"
        ),
        {"lock_class": _LOCK_CLASS, "keys": keys},
    )
    by_digest = {user_digest(user_id): user_id for user_id in user_ids}
    found = await session.execute(
        select(table.c.user_id_sha256).where(table.c.user_id_sha256.in_(list(by_digest)))
    )
    return {by_digest[digest] for (digest,) in found}


async def was_deleted(session: AsyncSession, table: Table, user_id: uuid.UUID | str) -> bool:
    """Whether the user was deleted, without a lock (for reads and for
    handlers whose writes a later deletion finds anyway)."""
    found = await session.execute(
        select(table.c.user_id_sha256).where(table.c.user_id_sha256 == user_digest(user_id))
    )
    return found.first() is not None


async def record_deletion(session: AsyncSession, table: Table, user_id: uuid.UUID | str) -> None:
    """Lock the user exclusively (creators in flight commit first) and write
    the tombstone; the caller then deletes the user's rows in this transaction."""
    await _lock(session, user_id, shared=False)
    await session.execute(
        insert(table)
        .values(user_id_sha256=user_digest(user_id))
        .on_conflict_do_nothing(index_elements=[table.c.user_id_sha256])
    )
