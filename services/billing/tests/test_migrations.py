"""Billing's migrations, on a database of their own: forward, back, and in
step with the models."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from fabula_billing.models import Base
from fabula_billing.settings import Settings
from fabula_common import migrations
from fabula_common.db import create_engine
from fabula_common.provision import drop_database, provision, service_database_url

TABLES = {"accounts", "reservations", "usage_ledger", "processed_events"}


@pytest.fixture
async def private_database(admin_url: str, monkeypatch: pytest.MonkeyPatch):
    name = f"fabula_test_billing_{uuid.uuid4().hex[:8]}"
    await provision(admin_url, name, services=("billing",))
    monkeypatch.setenv("BILLING_DATABASE_URL", service_database_url(admin_url, name, "billing"))
    yield name
    await drop_database(admin_url, name)


async def _tables_and_diff() -> tuple[set[str], list]:
    engine = create_engine(Settings())
    try:
        async with engine.connect() as conn:
            names = await conn.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'billing'")
            )
            tables = set(names)

            def diff(sync_conn) -> list:
                context = MigrationContext.configure(
                    sync_conn,
                    opts={
                        "include_schemas": True,
                        # billing is the role's default schema, so it reflects as None.
                        "include_name": lambda name, type_, _parent: (
                            name in (None, "billing")
                            if type_ == "schema"
                            else name != "alembic_version"
                        ),
                    },
                )
                return compare_metadata(context, Base.metadata)

            return tables, await conn.run_sync(diff)
    finally:
        await engine.dispose()


async def test_migrations_run_forward_and_back_and_match_the_models(private_database):
    await asyncio.to_thread(migrations.upgrade, "billing")
    tables, diff = await _tables_and_diff()
    assert tables == TABLES | {"alembic_version"}
    assert diff == []

    await asyncio.to_thread(migrations.downgrade, "billing")
    tables, _ = await _tables_and_diff()
    assert tables == {"alembic_version"}

    await asyncio.to_thread(migrations.upgrade, "billing")
    tables, _ = await _tables_and_diff()
    assert tables == TABLES | {"alembic_version"}
