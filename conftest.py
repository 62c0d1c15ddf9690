"""Shared fixtures: a private database and private NATS stream per test session.

Tests never touch the `fabula` database or the FABULA stream that `make run`
uses: the session creates `fabula_test_<random>` (provisioned and migrated like
the real one) and a stream/subject prefix of its own, and drops both at the end.
Settings read the environment, so the fixtures point it at these.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import nats
import pytest

from fabula_common import migrations
from fabula_common.provision import SERVICES, drop_database, provision, service_database_url

ADMIN_URL = os.environ.get("POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
RUN_ID = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def admin_url() -> str:
    return ADMIN_URL


@pytest.fixture(scope="session")
def nats_url() -> str:
    return NATS_URL


@pytest.fixture(scope="session")
async def test_database(admin_url: str):
    """Name of a provisioned, fully migrated database private to this session."""
    name = f"fabula_test_{RUN_ID}"
    await provision(admin_url, name)
    for service in SERVICES:
        os.environ[f"{service.upper()}_DATABASE_URL"] = service_database_url(admin_url, name, service)
    for service in SERVICES:
        await asyncio.to_thread(migrations.upgrade, service)
    yield name
    await drop_database(admin_url, name)


@pytest.fixture(scope="session")
async def test_stream(nats_url: str):
    """A JetStream stream and subject prefix private to this session."""
    stream, prefix = f"TEST_{RUN_ID}", f"test_{RUN_ID}"
    os.environ.update(NATS_URL=nats_url, NATS_STREAM=stream, NATS_SUBJECT_PREFIX=prefix)
    yield stream
    nc = await nats.connect(nats_url, connect_timeout=2)
    try:
        await nc.jetstream().delete_stream(stream)
    except Exception:  # noqa: BLE001 - no stream was created
        pass
    await nc.close()


@pytest.fixture(scope="session", autouse=True)
def _test_environment():
    os.environ["FABULA_ENV"] = "test"
    os.environ.setdefault("LOG_FORMAT", "text")
