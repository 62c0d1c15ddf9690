"""Every service's migrations, each on a database of its own: they run forward
and back, and head matches the service's models exactly."""

from __future__ import annotations

import asyncio
import importlib
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fabula_common import migrations
from fabula_common.provision import SERVICES, drop_database, provision, service_database_url
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


@pytest.fixture
async def private_database(request, admin_url: str, monkeypatch: pytest.MonkeyPatch):
    service = request.param
    name = f"fabula_test_migrations_{service}_{uuid.uuid4().hex[:8]}"
    await provision(admin_url, name, services=(service,))
    url = service_database_url(admin_url, name, service)
    monkeypatch.setenv(f"{service.upper()}_DATABASE_URL", url)
    yield service, url
    await drop_database(admin_url, name)


async def _tables_and_diff(url: str, metadata) -> tuple[set[str], list]:
    # On `public` as search_path, Alembic reflects the tables with the schema
    # their models name (on the role's own path it would report None).
    engine = create_async_engine(
        url.replace("postgresql://", "postgresql+asyncpg://", 1),
        connect_args={"server_settings": {"search_path": "public"}},
    )
    schema = metadata.schema

    def diff(sync_conn) -> list:
        context = MigrationContext.configure(
            sync_conn,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, _parent: type_ != "schema" or name == schema,
                "version_table_schema": schema,
            },
        )
        return compare_metadata(context, metadata)

    try:
        async with engine.connect() as conn:
            names = await conn.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
            )
            return set(names), await conn.run_sync(diff)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("private_database", SERVICES, indirect=True)
async def test_migrations_run_forward_and_back_and_match_the_models(private_database):
    service, url = private_database
    metadata = importlib.import_module(f"fabula_{service}.models").Base.metadata
    model_tables = {table.name for table in metadata.sorted_tables} | {"alembic_version"}

    await asyncio.to_thread(migrations.upgrade, service)
    tables, diff = await _tables_and_diff(url, metadata)
    assert tables == model_tables
    assert diff == [], f"{service}: migrations and models differ"

    await asyncio.to_thread(migrations.downgrade, service)
    tables, _ = await _tables_and_diff(url, metadata)
    assert tables == {"alembic_version"}

    await asyncio.to_thread(migrations.upgrade, service)
    tables, _ = await _tables_and_diff(url, metadata)
    assert tables == model_tables
