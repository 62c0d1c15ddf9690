"""Fixtures of the shared library's own tests."""

from __future__ import annotations

import uuid

import pytest
from fabula_common.db import Database, make_metadata
from fabula_common.messaging.inbox import processed_events_table
from fabula_common.messaging.outbox import outbox_table
from fabula_common.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.engine import make_url


class EventTablesSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EVENT_TABLES_TEST_")
    database_url: str = "postgresql://example:example@127.0.0.1:5432/fabula"
    grpc_port: int = 0


@pytest.fixture
def service_settings(test_stream) -> EventTablesSettings:
    """Settings of a producing/consuming process on the session's stream."""
    return EventTablesSettings()


@pytest.fixture
async def event_tables(test_database, admin_url):
    """An outbox and an inbox in a schema of their own in the test database."""
    schema = f"events_{uuid.uuid4().hex[:8]}"
    url = make_url(admin_url).set(database=test_database).render_as_string(hide_password=False)
    db = Database(EventTablesSettings(database_url=url))
    metadata = make_metadata(schema)
    outbox, processed = outbox_table(metadata), processed_events_table(metadata)
    async with db.engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        await connection.run_sync(metadata.create_all)
    yield db, outbox, processed
    async with db.engine.begin() as connection:
        await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await db.dispose()
