"""Helpers for tests that run real Postgres, NATS and gRPC (used by conftest.py)."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_common.db import Database
from fabula_common.grpc_server import GrpcApp

# Below the kernel's ephemeral range (32768 and up by default), which outgoing
# connections (to Postgres, NATS, ...) draw their local ports from: a port the
# kernel handed out as "free" could be taken by one of those before the test
# server binds it.
_PORT_RANGE = (20000, 32000)
_handed_out: set[int] = set()


def _port_range() -> tuple[int, int]:
    """This process's share of _PORT_RANGE. Under pytest-xdist every worker
    draws from its own slice, so two workers never pick the same port (one
    could pick a port the other has checked but not yet bound)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count <= 1:
        return _PORT_RANGE
    low, high = _PORT_RANGE
    size = (high - low) // count
    start = low + int(worker[2:]) % count * size
    return start, start + size


def free_port() -> int:
    """A port nothing listens on, distinct from every other one this process was given."""
    low, high = _port_range()
    while True:
        port = random.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


async def wait_serving(address: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{address} not serving after {timeout}s")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running_app(app: GrpcApp) -> AsyncIterator[str]:
    """Run a service's GrpcApp in this event loop; yield its address."""
    task = asyncio.create_task(app.run(handle_signals=False))
    address = app.settings.grpc_listen_address
    try:
        await wait_serving(address)
        yield address
    finally:
        app.request_stop()
        await asyncio.wait_for(task, timeout=30)


@asynccontextmanager
async def rolled_back_session(database: Database) -> AsyncIterator[AsyncSession]:
    """A session whose every change is undone at the end, commits included.

    For tests that call repository and service functions directly: nothing to
    clean up and no commit to wait for. The session runs inside an outer
    transaction on one connection; its own begin/commit/rollback become
    SAVEPOINTs (SQLAlchemy's "joining a session into an external transaction"
    recipe). Nothing it writes is visible to other connections, so it is not
    for tests that go through a running service.
    """
    async with database.engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


class RolledBackDatabase:
    """Stands in for a `Database` where code takes one (a servicer, a worker),
    so it can be called in-process on a `rolled_back_session`: each
    `session_scope()` is a SAVEPOINT of that session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @asynccontextmanager
    async def session_scope(self) -> AsyncIterator[AsyncSession]:
        async with self.session.begin_nested():
            yield self.session
