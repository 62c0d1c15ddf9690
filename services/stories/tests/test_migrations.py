"""Stories' migrations, on a database of their own: forward, back, and in
step with the models."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from fabula_common import migrations
from fabula_common.provision import drop_database, provision, service_database_url
from fabula_stories.models import Base
from fabula_stories.settings import Settings

TABLES = {"stories", "segments"}


@pytest.fixture
async def private_database(admin_url: str, monkeypatch: pytest.MonkeyPatch):
    name = f"fabula_test_stories_{uuid.uuid4().hex[:8]}"
    await provision(admin_url, name, services=("stories",))
    monkeypatch.setenv("STORIES_DATABASE_URL", service_database_url(admin_url, name, "stories"))
    yield name
    await drop_database(admin_url, name)


async def _tables_and_diff() -> tuple[set[str], list]:
    # The role's search_path makes `stories` its default schema, which Alembic
    # would reflect as "no schema" and so never match the models' `stories.`
    # tables; on `public`, both sides name the schema.
    engine = create_async_engine(
        Settings().database_url, connect_args={"server_settings": {"search_path": "public"}}
    )
    try:
        async with engine.connect() as conn:
            names = await conn.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'stories'")
            )
            tables = set(names)

            def diff(sync_conn) -> list:
                context = MigrationContext.configure(
                    sync_conn,
                    opts={
                        "include_schemas": True,
                        "version_table_schema": "stories",
                        "include_name": lambda name, type_, _parent: (
                            type_ != "schema" or name == "stories"
                        ),
                    },
                )
                return compare_metadata(context, Base.metadata)

            return tables, await conn.run_sync(diff)
    finally:
        await engine.dispose()


async def test_migrations_run_forward_and_back_and_match_the_models(private_database):
    await asyncio.to_thread(migrations.upgrade, "stories")
    tables, diff = await _tables_and_diff()
    assert tables == TABLES | {"alembic_version"}
    assert diff == []

    await asyncio.to_thread(migrations.downgrade, "stories")
    tables, _ = await _tables_and_diff()
    assert tables == {"alembic_version"}

    await asyncio.to_thread(migrations.upgrade, "stories")
    tables, _ = await _tables_and_diff()
    assert tables == TABLES | {"alembic_version"}
