"""Billing forgets a deleted user: the ledger stays, anonymised; the account,
reservations and anything naming the user go; late events open nothing again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from fabula.generation.v1 import events_pb2 as generation_events
from fabula.generation.v1 import generation_pb2
from fabula.stories.v1 import events_pb2 as stories_events
from fabula.users.v1 import events_pb2 as users_events
from fabula_billing.database import deleted_users
from fabula_billing.leaving.service import AccountDeleted, forget_user
from fabula_billing.settings import Settings
from fabula_billing.usage.models import Account, Reservation, UsageLedgerEntry
from fabula_billing.usage.service import BillingService
from fabula_common.db import Database, utcnow
from fabula_common.money import to_money
from fabula_common.testing import rolled_back_session
from fabula_common.tombstones import user_digest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession


@pytest.fixture(scope="module")
async def db(test_database) -> AsyncIterator[Database]:
    database = Database(Settings())
    yield database
    await database.dispose()


@pytest.fixture
async def session(db: Database) -> AsyncIterator[AsyncSession]:
    async with rolled_back_session(db) as session:
        yield session


@pytest.fixture
def billing() -> BillingService:
    return BillingService(Settings())


def usage_event(user_id: str, reservation_id: str = "") -> generation_events.UsageRecorded:
    event = generation_events.UsageRecorded(
        event_id=str(uuid.uuid4()),
        generation_id=str(uuid.uuid4()),
        user_id=user_id,
        purpose=generation_pb2.PURPOSE_STORY_CONTINUATION,
        subject=generation_pb2.SubjectRef(kind="story", id=str(uuid.uuid4())),
        reservation_id=reservation_id,
        provider="fake",
        model="fake-1",
        prompt_tokens=120,
        completion_tokens=80,
        cost=to_money(Decimal("0.25")),
        outcome=generation_events.GENERATION_OUTCOME_COMPLETED,
    )
    event.occurred_at.FromDatetime(utcnow())
    return event


def deleted(user_id: str) -> users_events.UserDeleted:
    return users_events.UserDeleted(event_id=str(uuid.uuid4()), user_id=user_id)


async def rows_naming(session: AsyncSession, user_id: str) -> dict[str, int]:
    """Every text, uuid or JSON column of the billing schema holding the id."""
    columns = await session.execute(
        text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'billing' "
            "AND data_type IN ('uuid', 'text', 'character varying', 'character', 'jsonb')"
        )
    )
    found = {}
    for table, column in columns.all():
        count = await session.scalar(
            text(f'SELECT count(*) FROM billing."{table}" WHERE "{column}"::text LIKE :id'),
            {"id": f"%{user_id}%"},
        )
        if count:
            found[f"{table}.{column}"] = count
    return found


async def test_deletion_anonymises_the_ledger_and_removes_the_rest(session, billing, db):
    user_id = str(uuid.uuid4())
    # Reserving commits on its own (one autocommit statement); the rest is undone.
    autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
    reservation = await billing.reserve_generation(autocommit, uuid.UUID(user_id), Decimal("0.5"))
    await billing.reserve_generation(autocommit, uuid.UUID(user_id), Decimal("0.5"))  # in flight
    event = usage_event(user_id, str(reservation.reservation_id))
    await billing.settle_usage(session, [event])
    assert await rows_naming(session, user_id)

    await forget_user(session, deleted(user_id))
    await forget_user(session, deleted(user_id))  # a repeat changes nothing

    assert await rows_naming(session, user_id) == {}
    entry = await session.scalar(
        select(UsageLedgerEntry).where(UsageLedgerEntry.event_id == event.event_id)
    )
    # Kept for accounting: what was used and what it cost, by nobody.
    assert (entry.user_id, entry.reservation_id, entry.generation_id, entry.subject_id) == (
        None,
        None,
        "",
        "",
    )
    assert (entry.cost_usd, entry.model, entry.prompt_tokens) == (Decimal("0.25"), "fake-1", 120)
    assert await session.scalar(
        select(func.count()).select_from(Reservation).where(
            Reservation.user_id == uuid.UUID(user_id)
        )
    ) == 0
    assert await session.get(Account, uuid.UUID(user_id)) is None
    assert await session.scalar(
        select(deleted_users.c.user_id_sha256).where(
            deleted_users.c.user_id_sha256 == user_digest(user_id)
        )
    )


async def test_a_job_stages_entry_keeps_its_production_type_but_not_its_job(session, billing):
    """Before and after the deletion: the job id goes, what kind of work it was stays."""
    user_id = str(uuid.uuid4())
    attributes = {"production_type": "novella", "stage": "outline", "job_id": str(uuid.uuid4())}
    before, late = usage_event(user_id), usage_event(user_id)
    for event in (before, late):
        event.purpose = generation_pb2.PURPOSE_JOB_STAGE
        event.attributes.update(attributes)
    await billing.settle_usage(session, [before])

    await forget_user(session, deleted(user_id))
    await billing.settle_usage(session, [late])

    entries = await session.scalars(
        select(UsageLedgerEntry.attributes).where(
            UsageLedgerEntry.event_id.in_([before.event_id, late.event_id])
        )
    )
    assert list(entries) == [{"production_type": "novella", "stage": "outline"}] * 2


async def test_late_events_of_a_deleted_user_open_no_account(session, billing):
    user_id = str(uuid.uuid4())
    await billing.open_account(session, uuid.UUID(user_id))
    await forget_user(session, deleted(user_id))

    late = usage_event(user_id, str(uuid.uuid4()))
    await billing.settle_usage(session, [late])
    await billing.count_delivered(
        session,
        [
            stories_events.GenerationDelivered(
                event_id=str(uuid.uuid4()), generation_id=late.reservation_id, user_id=user_id
            )
        ],
    )
    await billing.open_registered_account(
        session, [users_events.UserRegistered(event_id=str(uuid.uuid4()), user_id=user_id)]
    )

    assert await rows_naming(session, user_id) == {}
    entry = await session.scalar(
        select(UsageLedgerEntry).where(UsageLedgerEntry.event_id == late.event_id)
    )
    # Its cost is still in the books, anonymised and uncounted.
    assert entry.user_id is None and entry.cost_usd == Decimal("0.25") and not entry.counted
    with pytest.raises(AccountDeleted):
        await billing.get_usage(session, uuid.UUID(user_id))


async def test_a_deleted_user_cannot_reserve(billing, db):
    # Reserving runs on connections of its own: the deletion is committed here.
    user_id = uuid.uuid4()
    async with db.session_scope() as session:
        await billing.open_account(session, user_id)
        await forget_user(session, deleted(str(user_id)))
    autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
    with pytest.raises(AccountDeleted):
        await billing.reserve_generation(autocommit, user_id, Decimal("0.1"))
