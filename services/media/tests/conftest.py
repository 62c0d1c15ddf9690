"""Fixtures of the media tests: the service and its worker in this process,
over real gRPC, Postgres and NATS, storing in a private folder (or, for the
S3 tests, a moto server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fabula.media.v1 import media_pb2_grpc
from fabula_common.db import Database
from fabula_common.testing import free_port
from fabula_media.settings import Settings
from fabula_media.testing import media_stack


@pytest.fixture(scope="module")
def local_settings(test_database, test_stream, tmp_path_factory) -> Settings:
    return Settings(
        grpc_port=free_port(),
        local_dir=str(tmp_path_factory.mktemp("media")),
        public_url="http://gateway.test",
        outbox_poll_seconds=0.05,
    )


@pytest.fixture(scope="module")
async def media(local_settings) -> AsyncIterator[media_pb2_grpc.MediaServiceStub]:
    async with media_stack(local_settings) as stub:
        yield stub


@pytest.fixture(scope="module")
async def db(test_database) -> AsyncIterator[Database]:
    database = Database(Settings())
    yield database
    await database.dispose()
