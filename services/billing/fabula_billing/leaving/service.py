"""Leaving: the UserDeleted handler and the rule for events of deleted users.

On UserDeleted, in one transaction with the event's inbox row: a tombstone is
written (by the id's SHA-256), the user's ledger entries are anonymised (kept
for accounting: what was used, what it cost, when; no user, reservation,
generation or subject id, nor the job id among their attributes), and the account and its reservations are deleted.
Events of the user that come later (a UsageRecorded still in the stream) open
no account again: their usage goes into the ledger anonymised, and owner
decisions about reservations that are gone are dropped.
"""

from __future__ import annotations

import logging
import uuid

from fabula.users.v1 import events_pb2 as users_events
from fabula_common.errors import Unauthenticated
from fabula_common.tombstones import deleted_among, is_deleted, record_deletion, was_deleted
from sqlalchemy import Text, delete, literal, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_billing.database import deleted_users
from fabula_billing.usage.models import Account, Reservation, UsageLedgerEntry

log = logging.getLogger(__name__)


class AccountDeleted(Unauthenticated):
    reason = "account-deleted"


async def user_was_deleted(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """For event handlers: holds the user's lock shared until the transaction
    ends, so a deletion runs wholly before or after the handler."""
    return await is_deleted(session, deleted_users, user_id)


async def users_deleted(session: AsyncSession, user_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """user_was_deleted for a batch of events."""
    return await deleted_among(session, deleted_users, user_ids)


async def refuse_deleted(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Before an account is opened for the user."""
    if await was_deleted(session, deleted_users, user_id):
        raise AccountDeleted("the account was deleted")


# Attributes of a ledger entry that name something of the user's (the
# production type and stage of a job's call stay: they name nothing).
IDENTIFYING_ATTRIBUTES = ("job_id",)


def anonymous(entry_values: dict[str, object]) -> dict[str, object]:
    """A ledger entry's values with nothing that names the user."""
    values = {
        **entry_values,
        "user_id": None,
        "reservation_id": None,
        "generation_id": "",
        "subject_id": "",
    }
    if isinstance(attributes := entry_values.get("attributes"), dict):
        values["attributes"] = {
            key: value for key, value in attributes.items() if key not in IDENTIFYING_ATTRIBUTES
        }
    return values


async def forget_user(session: AsyncSession, event: users_events.UserDeleted) -> None:
    """The UserDeleted handler. Idempotent (and the inbox skips a repeat)."""
    try:
        user_id = uuid.UUID(event.user_id)
    except ValueError:
        log.error(
            "user-deleted event %s dropped: user_id %r is not a UUID", event.event_id, event.user_id
        )
        return
    await record_deletion(session, deleted_users, user_id)
    ledger = await session.execute(
        update(UsageLedgerEntry)
        .where(UsageLedgerEntry.user_id == user_id)
        .values(
            **anonymous({}),
            attributes=UsageLedgerEntry.attributes.op("-")(
                literal(list(IDENTIFYING_ATTRIBUTES), ARRAY(Text))
            ),
        )
    )
    # The account first: a reservation being made holds its row, so this
    # waits for it, and the next statement sees (and deletes) the reservation.
    await session.execute(delete(Account).where(Account.user_id == user_id))
    reservations = await session.execute(delete(Reservation).where(Reservation.user_id == user_id))
    log.info(
        "user %s deleted: %d ledger entries anonymised, %d reservations and the account removed",
        user_id,
        ledger.rowcount or 0,
        reservations.rowcount or 0,
    )
