"""Outbound channels and server connections: calls are balanced over every
address of a service, a dead or silent peer fails calls fast, and servers
retire old connections so callers re-resolve and find new pods."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time

import grpc
import pytest
from fabula_common.context import request_id_scope, set_deadline_in
from fabula_common.grpc_client import (
    KEEPALIVE_TIME_MS,
    KEEPALIVE_TIMEOUT_MS,
    channel_target,
    open_channel,
)
from fabula_common.grpc_server import GrpcApp
from fabula_common.messaging.headers import REQUEST_ID_HEADER
from fabula_common.settings import ServiceSettings
from fabula_common.testing import free_port, running_app, wait_serving
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from pydantic_settings import SettingsConfigDict

PEER = "fabula.test.v1.PeerService"


class PeerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHANNEL_TEST_")
    database_url: str = "postgresql://example:example@127.0.0.1:5432/fabula"
    grpc_port: int = 0


async def _health(channel: grpc.aio.Channel, timeout: float = 5) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=timeout
    )
    return reply.status


def test_host_and_port_become_a_dns_target_and_explicit_resolvers_are_kept():
    assert channel_target("billing:50054") == "dns:///billing:50054"
    # Loopback (make run, tests) resolves to itself through the DNS resolver.
    assert channel_target("127.0.0.1:50054") == "dns:///127.0.0.1:50054"
    assert channel_target("localhost:50054") == "dns:///localhost:50054"
    assert channel_target("dns:///billing.fabula.svc:50054") == "dns:///billing.fabula.svc:50054"
    assert channel_target("ipv4:10.0.0.1:50054,10.0.0.2:50054").startswith("ipv4:")


async def test_a_loopback_address_still_reaches_its_server():
    app = GrpcApp("channel-test", PeerSettings(grpc_port=free_port()))
    async with running_app(app) as address, open_channel(address, 5) as channel:
        assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING


async def test_calls_are_spread_over_every_address_of_the_service():
    """A headless Service resolves to every pod; the same list is given here
    literally. Each stand-in answers with a status of its own, so the
    answers show which one served each call."""
    servers, addresses = [], []
    statuses = (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)
    for status in statuses:
        server = grpc.aio.server()
        servicer = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = free_port()
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await servicer.set("", status)
        servers.append(server)
        addresses.append(f"127.0.0.1:{port}")
    try:
        async with open_channel("ipv4:" + ",".join(addresses), 5) as channel:
            seen: list[int] = []
            deadline = time.monotonic() + 5
            # Both connections come up within a few calls; then calls alternate.
            while time.monotonic() < deadline and len(set(seen[-4:])) < 2:
                seen.append(await _health(channel))
            recent = seen[-4:]
            assert set(recent) == set(statuses), seen
    finally:
        for server in servers:
            await server.stop(None)


async def test_a_closed_port_fails_calls_at_once():
    async with open_channel(f"127.0.0.1:{free_port()}", 10) as channel:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await _health(channel, timeout=10)
    assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 5  # its deadline is 10 s


async def test_a_peer_that_accepts_tcp_but_never_speaks_http2_fails_calls_fast():
    """A hung process (or something else) on the port: TCP is accepted, the
    HTTP/2 handshake never comes. The connection attempt gives up after the
    connect timeout, long before the call's own 10 s deadline; later calls
    fail at once while the channel retries in the background."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        async with open_channel(address, 10) as channel:
            for limit in (2.5, 0.5):
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as failure:
                    await _health(channel, timeout=10)
                assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
                assert time.monotonic() - started < limit
    finally:
        listener.close()


# A GrpcApp in a process of its own, so that the test can freeze it.
PEER_PROCESS = f"""
import asyncio, sys
import grpc
from fabula_common.grpc_server import GrpcApp
from fabula_common.settings import ServiceSettings

class PeerSettings(ServiceSettings):
    database_url: str = "postgresql://example:example@127.0.0.1:5432/fabula"
    grpc_port: int = 0

async def peer(request, context):
    return context.peer().encode()

async def main():
    app = GrpcApp("channel-test", PeerSettings(grpc_port=int(sys.argv[1])))
    handler = grpc.method_handlers_generic_handler(
        "{PEER}", {{"Peer": grpc.unary_unary_rpc_method_handler(peer)}}
    )
    app.add_servicer(lambda h, server: server.add_generic_rpc_handlers((h,)), handler, "{PEER}")
    await app.run()

asyncio.run(main())
"""


async def test_a_hung_peer_fails_calls_at_once_once_a_keepalive_ping_goes_unanswered():
    """A frozen process keeps its connections open and answers nothing: each
    call would wait out its whole deadline for as long as it stays frozen.
    The channel's keepalive ping notices within KEEPALIVE_TIME + TIMEOUT
    (7 s); then calls fail UNAVAILABLE at once, and the channel reconnects
    when the peer answers again. Idle, the server takes the pings: the same
    connection serves throughout (a gRPC server's defaults would end it with
    a GOAWAY "too_many_pings")."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", PEER_PROCESS, str(port))
    address = f"127.0.0.1:{port}"
    try:
        await wait_serving(address)
        async with open_channel(address, 30) as channel:
            call = channel.unary_unary(f"/{PEER}/Peer")
            connection = await call(b"")
            await asyncio.sleep(3 * KEEPALIVE_TIME_MS / 1000 + 1)  # three pings, idle
            assert await call(b"") == connection

            process.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as in_flight:
                await call(b"")  # its deadline is 30 s
            noticed_in = time.monotonic() - frozen_at
            assert in_flight.value.code() is grpc.StatusCode.UNAVAILABLE
            assert noticed_in < 15, f"took {noticed_in:.1f}s"  # 7 s, with room for a loaded CI
            assert noticed_in > KEEPALIVE_TIMEOUT_MS / 1000  # the ping's timeout, not something else

            for _ in range(3):
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as later:
                    await call(b"")
                assert later.value.code() is grpc.StatusCode.UNAVAILABLE
                assert time.monotonic() - started < 5  # the connect timeout (1 s) at most

            process.send_signal(signal.SIGCONT)
            back_by = time.monotonic() + 10
            while True:
                try:
                    await call(b"", timeout=2)
                    break
                except grpc.aio.AioRpcError:
                    assert time.monotonic() < back_by, "no call served after the peer thawed"
                    await asyncio.sleep(0.2)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()
        await asyncio.wait_for(process.wait(), 30)


def test_servers_cap_connection_age_by_default_with_room_for_the_longest_call():
    settings = PeerSettings()
    options = dict(settings.grpc_server_options())
    assert options["grpc.max_connection_age_ms"] == 300_000
    # A story stream may run for GENERATION_DEADLINE_SECONDS: never cut by the cap.
    assert options["grpc.max_connection_age_grace_ms"] > settings.generation_deadline_seconds * 1000
    unlimited = PeerSettings(GRPC_MAX_CONNECTION_AGE_SECONDS=0)
    assert "grpc.max_connection_age_ms" not in dict(unlimited.grpc_server_options())


async def test_servers_retire_old_connections_so_callers_reconnect():
    async def peer(request: bytes, context) -> bytes:
        return context.peer().encode()

    handler = grpc.method_handlers_generic_handler(
        PEER, {"Peer": grpc.unary_unary_rpc_method_handler(peer)}
    )
    settings = PeerSettings(
        grpc_port=free_port(),
        GRPC_MAX_CONNECTION_AGE_SECONDS=0.5,
        GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS=0.5,
    )
    app = GrpcApp("channel-test", settings)
    app.add_servicer(lambda h, server: server.add_generic_rpc_handlers((h,)), handler, PEER)
    async with running_app(app) as address, open_channel(address, 5) as channel:
        call = channel.unary_unary(f"/{PEER}/Peer")
        first = await call(b"")
        deadline = time.monotonic() + 5
        later = first
        while later == first and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            later = await call(b"")
    # The caller's address (its local port) changed: a new connection.
    assert later != first


async def test_calls_carry_the_request_id_and_no_later_deadline_than_the_call_being_served():
    seen: list[tuple[dict[str, str], float | None]] = []

    async def record(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.append((dict(context.invocation_metadata()), context.time_remaining()))
        return request

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "test.Echo", {"Call": grpc.unary_unary_rpc_method_handler(record)}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with open_channel(f"127.0.0.1:{port}", default_timeout=10) as channel:
            call = channel.unary_unary("/test.Echo/Call")
            with request_id_scope("req-1"):
                set_deadline_in(2.0)  # the incoming call must be answered within 2 s
                try:
                    assert await call(b"x") == b"x"
                    # The caller's own metadata is kept, its request id wins.
                    await call(b"x", metadata=(("x-request-id", "mine"), ("k", "v")))
                finally:
                    set_deadline_in(None)
            await call(b"x", timeout=30)  # no call being served: the caller's timeout
    finally:
        await server.stop(None)

    (first, first_left), (second, _), (third, third_left) = seen
    # gRPC rounds deadlines up a little; the 10 s default would be far off.
    assert first[REQUEST_ID_HEADER] == "req-1" and 1.0 < first_left < 2.5
    assert second[REQUEST_ID_HEADER] == "mine" and second["k"] == "v"
    assert REQUEST_ID_HEADER not in third and 20 < third_left < 30.5
