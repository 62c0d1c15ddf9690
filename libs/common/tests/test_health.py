"""A service's grpc.health.v1 tells the truth about its database and NATS,
within seconds, with real faults: a private Postgres cluster stopped (fast and
immediate) and frozen, a private nats-server stopped. Calls meanwhile fail
fast with UNAVAILABLE and a retry delay, the frozen database's too."""

from __future__ import annotations

import asyncio
import shutil
import time

import grpc
import pytest
from fabula_common.db import Database
from fabula_common.errors import error_details
from fabula_common.grpc_server import GrpcApp
from fabula_common.health import LIVENESS, NATS, POSTGRES, DependencyCheck, DependencyMonitor
from fabula_common.messaging.bus import EventBus
from fabula_common.settings import ServiceSettings
from fabula_common.testing import PrivateNats, PrivatePostgres, free_port, running_app
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from pydantic_settings import SettingsConfigDict
from sqlalchemy import text

SERVICE = "probe"
SERVICE_NAME = "fabula.test.v1.ProbeService"
QUERY = f"/{SERVICE_NAME}/Query"
INTERVAL, TIMEOUT = 0.2, 0.5

pytestmark = pytest.mark.skipif(not shutil.which("nats-server"), reason="nats-server not installed")


class ProbeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HEALTH_TEST_")


@pytest.fixture(scope="module")
def postgres():
    cluster = PrivatePostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def nats_server(tmp_path):
    server = PrivateNats(tmp_path / "jetstream")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def running_postgres(postgres):
    """The module's cluster, running at the start and the end of each test."""
    postgres.thaw()
    if not postgres.running:
        postgres.start()
    yield postgres
    postgres.thaw()
    if not postgres.running:
        postgres.start()


def create_probe_app(settings: ProbeSettings) -> GrpcApp:
    """A service as the real ones are wired: a database, an event bus, and
    one method that needs the database."""
    app = GrpcApp(SERVICE, settings)
    db = Database(settings)
    bus = EventBus(settings, name=SERVICE)

    async def query(request: bytes, context) -> bytes:
        async with db.session_scope() as session:
            return str(await session.scalar(text("SELECT 1"))).encode()

    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME, {"Query": grpc.unary_unary_rpc_method_handler(query)}
    )
    app.add_servicer(
        lambda _servicer, server: server.add_generic_rpc_handlers((handler,)), None, SERVICE_NAME
    )
    app.watch_dependency(POSTGRES, db.ping)
    app.watch_dependency(NATS, bus.ping, required=False)
    app.on_shutdown(bus.close)
    app.on_shutdown(db.dispose)
    return app


@pytest.fixture
async def service(running_postgres, nats_server):
    settings = ProbeSettings(
        database_url=running_postgres.admin_url,
        grpc_port=free_port(),
        nats_url=nats_server.url,
        health_check_interval_seconds=INTERVAL,
        health_check_timeout_seconds=TIMEOUT,
        db_pool_timeout_seconds=1.0,
        nats_timeout_seconds=0.5,
        shutdown_grace_seconds=1.0,
    )
    async with running_app(create_probe_app(settings)) as address, grpc.aio.insecure_channel(
        address
    ) as channel:
        yield channel


async def status(channel: grpc.aio.Channel, name: str) -> str:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=name), timeout=1
    )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def statuses(channel: grpc.aio.Channel) -> dict[str, str]:
    names = ["", SERVICE_NAME, f"{SERVICE}/postgres", f"{SERVICE}/nats", LIVENESS]
    return dict(zip(names, await asyncio.gather(*(status(channel, n) for n in names)), strict=True))


async def eventually(channel, expected: dict[str, str], within: float) -> float:
    """Seconds until the health statuses include `expected`."""
    started = time.monotonic()
    while True:
        current = await statuses(channel)
        if expected.items() <= current.items():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"health still {current} after {within}s, expected {expected}")
        await asyncio.sleep(0.05)


async def query(channel: grpc.aio.Channel) -> bytes:
    return await channel.unary_unary(QUERY)(b"", timeout=5)


ALL_UP = {
    "": "SERVING",
    SERVICE_NAME: "SERVING",
    f"{SERVICE}/postgres": "SERVING",
    f"{SERVICE}/nats": "SERVING",
    LIVENESS: "SERVING",
}
POSTGRES_DOWN = {
    **ALL_UP,
    "": "NOT_SERVING",
    SERVICE_NAME: "NOT_SERVING",
    f"{SERVICE}/postgres": "NOT_SERVING",
}


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_down_makes_the_service_not_serving_and_calls_fail_fast(
    service, running_postgres, mode
):
    assert await statuses(service) == ALL_UP
    assert await query(service) == b"1"

    running_postgres.stop(mode)
    await eventually(service, POSTGRES_DOWN, within=3)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await query(service)
    elapsed = time.monotonic() - started

    # Liveness stays SERVING: restarting the process would not bring Postgres back.
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE, refused.value.details()
    assert error_details(refused.value).retry_after
    assert elapsed < 2, f"took {elapsed:.1f}s"

    await asyncio.to_thread(running_postgres.start)
    await eventually(service, ALL_UP, within=3)
    assert await query(service) == b"1"


async def test_a_frozen_postgres_reads_as_down_and_calls_are_refused_at_once(
    service, running_postgres
):
    """A frozen database refuses no connection: calls would each wait out
    their deadline. Once a second probe in a row has failed, they are refused
    at once with a retry delay, until a probe succeeds again."""
    await eventually(service, ALL_UP, within=1)
    assert await query(service) == b"1"  # the pool holds a connection, as in use

    running_postgres.freeze()
    try:
        await eventually(service, POSTGRES_DOWN, within=3)
        await asyncio.sleep(2 * (INTERVAL + TIMEOUT) + 0.6)  # the second failed probe
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await query(service)  # its deadline is 5 s
        elapsed = time.monotonic() - started
    finally:
        running_postgres.thaw()
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE, refused.value.details()
    assert error_details(refused.value).retry_after
    assert elapsed < 2, f"took {elapsed:.1f}s"  # not its 5 s deadline; margin for a loaded CI

    await eventually(service, ALL_UP, within=3)
    assert await query(service) == b"1"


async def test_nats_down_is_reported_while_the_service_keeps_serving(service, nats_server):
    await eventually(service, ALL_UP, within=1)

    nats_server.stop()
    await eventually(service, {**ALL_UP, f"{SERVICE}/nats": "NOT_SERVING"}, within=3)
    assert await query(service) == b"1"

    await asyncio.to_thread(nats_server.start)
    await eventually(service, ALL_UP, within=5)


async def test_a_required_dependency_s_first_failure_is_confirmed_at_once():
    """Calls are refused from the second failed probe in a row, which follows
    the first at once rather than an interval later; a dependency that
    answers is probed once per interval."""
    loop = asyncio.get_running_loop()
    probed_at: list[float] = []
    answering = True

    async def probe() -> None:
        probed_at.append(loop.time())
        if not answering:
            raise ConnectionRefusedError("no answer")

    interval = 2.0
    monitor = DependencyMonitor(SERVICE, health_aio.HealthServicer(), interval=interval, timeout=1)
    monitor.add(DependencyCheck(POSTGRES, probe))
    running = asyncio.create_task(monitor.run([SERVICE_NAME]))
    try:
        while len(probed_at) < 1:
            await asyncio.sleep(0.05)
        answering = False
        while len(probed_at) < 3:
            await asyncio.sleep(0.05)
        assert monitor.refused_for == POSTGRES
        up, first_failure, confirmed = probed_at
        assert first_failure - up > interval * 0.9  # answering: once per interval
        assert confirmed - first_failure < interval / 2  # failed once: again at once
        answering = True
        while monitor.refused_for is not None:
            await asyncio.sleep(0.05)
        assert probed_at[3] - confirmed > interval * 0.9  # refusing: once per interval
    finally:
        monitor.stop()
        await running


async def test_a_probe_is_down_at_its_timeout_whatever_its_clean_up_takes():
    """A database probe cancelled on a frozen server still closes its
    connection, which the server never answers: the verdict must not wait
    for that."""
    cleaned_up = asyncio.Event()

    async def probe() -> None:
        try:
            await asyncio.sleep(30)  # no answer
        finally:
            await asyncio.sleep(3)  # the rollback of a connection to a frozen server
            cleaned_up.set()

    monitor = DependencyMonitor(SERVICE, health_aio.HealthServicer(), interval=10, timeout=0.3)
    monitor.add(DependencyCheck(POSTGRES, probe))
    started = time.monotonic()
    serving = await monitor.check_once([SERVICE_NAME])
    elapsed = time.monotonic() - started

    assert serving is False
    assert elapsed < 2, f"took {elapsed:.1f}s"  # 3.3 s when the clean-up is waited for
    assert not cleaned_up.is_set()  # left to finish on its own
