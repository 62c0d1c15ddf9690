"""The test helpers other suites rely on."""

from __future__ import annotations

import itertools
import uuid

import pytest
from fabula_common.testing import RolledBackDatabase, _port_range, free_port, rolled_back_session
from sqlalchemy import func, insert, select


async def test_a_rolled_back_session_commits_to_itself_and_leaves_nothing(event_tables):
    db, _outbox, processed = event_tables
    event_ids = [str(uuid.uuid4()) for _ in range(2)]

    async def stored(session) -> int:
        return await session.scalar(
            select(func.count()).select_from(processed).where(processed.c.event_id.in_(event_ids))
        )

    async with rolled_back_session(db) as session:
        async with session.begin():  # what a servicer does: commits (to a savepoint)
            await session.execute(insert(processed).values(event_id=event_ids[0], subject="test"))
        await session.execute(insert(processed).values(event_id=event_ids[1], subject="test"))
        await session.commit()
        seen_inside = await stored(session)
        async with db.session_scope() as other:
            seen_by_another_connection = await stored(other)

    async with db.session_scope() as session:
        left_behind = await stored(session)
    assert (seen_inside, seen_by_another_connection, left_behind) == (2, 0, 0)


async def test_a_rolled_back_database_scope_undoes_only_its_own_failed_work(event_tables):
    db, _outbox, processed = event_tables
    kept, failed = str(uuid.uuid4()), str(uuid.uuid4())

    async with rolled_back_session(db) as session:
        database = RolledBackDatabase(session)
        async with database.session_scope() as scoped:
            await scoped.execute(insert(processed).values(event_id=kept, subject="test"))
        try:
            async with database.session_scope() as scoped:
                await scoped.execute(insert(processed).values(event_id=failed, subject="test"))
                raise RuntimeError("the handler failed")
        except RuntimeError:
            pass
        stored = set(await session.scalars(select(processed.c.event_id)))

    assert kept in stored and failed not in stored


@pytest.mark.parametrize(("worker", "count"), [("gw0", 2), ("gw1", 2), ("gw3", 4)])
def test_each_xdist_worker_draws_ports_from_its_own_slice(monkeypatch, worker, count):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(count))
    slices = {}
    for index in range(count):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{index}")
        slices[index] = _port_range()
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)

    low, high = _port_range()
    port = free_port()

    assert low <= port < high
    ranges = sorted(slices.values())
    assert all(a_high <= b_low for (_, a_high), (b_low, _) in itertools.pairwise(ranges))
    assert ranges[0][0] >= 20000 and ranges[-1][1] <= 32000
