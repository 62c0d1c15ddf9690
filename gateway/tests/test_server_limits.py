"""A real gateway process (`python -m fabula_gateway`) on a free port, attacked
as an unauthenticated client would: huge and slow request heads, slow bodies,
idle connections, more requests and connections than it serves; and shut down
while a story streams. Limits are shortened from the environment so each
attack takes a second or two.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fabula_common.testing import free_port
from fabula_common.tokens import issue_access_token

from .conftest import _settings
from .fakes import CONTINUATION_PIECES, FakeBackends
from .sse import sse_events, sse_fields

BASE = "https://fabula.dev/problems/"
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 1.0
KEEP_ALIVE_TIMEOUT = 0.5
MAX_HEADER_BYTES = 16384


@dataclass
class Gateway:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def status(self, field: str) -> int:
        """A memory figure of the process in KiB (VmRSS, VmHWM: the peak)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"{field} not in /proc/{self.process.pid}/status")

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@asynccontextmanager
async def running_gateway(tmp_path: Path, **env: str) -> AsyncIterator[Gateway]:
    port = free_port()
    closed = {
        f"{name.upper()}_ADDR": f"127.0.0.1:{free_port()}"
        for name in ("users", "stories", "generation", "billing", "media")
    }
    log = tmp_path / f"gateway-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "fabula_gateway"],
        env={
            **os.environ,
            **closed,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "GATEWAY_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "GATEWAY_KEEP_ALIVE_TIMEOUT_SECONDS": str(KEEP_ALIVE_TIMEOUT),
            "GATEWAY_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
            **env,
        },
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    gateway = Gateway(process, port, log)
    try:
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            while True:
                assert process.poll() is None, log.read_text()
                with suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                assert time.monotonic() < deadline, "the gateway did not start"
                await asyncio.sleep(0.1)
        yield gateway
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path_factory.mktemp("gateway")) as running:
        yield running


async def read_response(reader: asyncio.StreamReader, timeout: float) -> tuple[int, dict, bytes]:
    """Status, headers and body of one response; raises on EOF or timeout."""
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def closed_within(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    async with asyncio.timeout(timeout):
        with suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received += chunk
    return received


async def assert_serving(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=2) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200


# ------------------------------------------------------------ request heads


async def test_an_oversized_head_is_a_431_problem(gateway: Gateway):
    reader, writer = await gateway.connect()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 4096))
    await writer.drain()

    status, headers, body = await read_response(reader, timeout=2)

    assert status == 431
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert json.loads(body)["type"] == BASE + "headers-too-large"
    assert await closed_within(reader, timeout=2) == b""
    writer.close()


async def test_an_oversized_head_sent_whole_in_one_write_is_a_431_too(gateway: Gateway):
    """A complete head that arrives in one read is parsed before it could be
    counted: it is measured once parsed, and the app never sees it."""
    reader, writer = await gateway.connect()
    big = b"a" * (MAX_HEADER_BYTES + 1024)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + big + b"\r\n\r\n")
    await writer.drain()

    status, headers, body = await read_response(reader, timeout=2)

    assert status == 431
    assert json.loads(body)["type"] == BASE + "headers-too-large"
    writer.close()
    await assert_serving(gateway)


async def test_four_64_mib_headers_leave_memory_bounded_and_requests_served(gateway: Gateway):
    rss_before = gateway.status("VmRSS")

    async def send_a_64_mib_header() -> bytes:
        reader, writer = await gateway.connect()
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            for _ in range(64):
                writer.write(b"a" * (1 << 20))
                await writer.drain()
        except ConnectionError:
            pass  # Refused: the server closed the connection mid-header.
        finally:
            answer = b""
            with suppress(ConnectionError, TimeoutError):
                answer = await closed_within(reader, timeout=5)
            writer.close()
        return answer

    answers = await asyncio.gather(*(send_a_64_mib_header() for _ in range(4)))

    # Each attacker got a 431 or, mid-send, a reset; none got through.
    assert all(a == b"" or a.startswith(b"HTTP/1.1 431 ") for a in answers), answers
    growth_mib = (gateway.status("VmHWM") - rss_before) / 1024
    assert growth_mib < 32, f"peak memory grew by {growth_mib:.0f} MiB"
    await assert_serving(gateway)


async def test_slowloris_connections_get_408_after_the_header_timeout_while_others_are_served(
    gateway: Gateway,
):
    async def slow_head() -> tuple[bytes, float]:
        # From before connecting: the server's clock starts when it accepts,
        # which a busy client may see well before connect() returns.
        started = time.monotonic()
        reader, writer = await gateway.connect()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

        async def trickle() -> None:
            with suppress(ConnectionError):
                while True:
                    writer.write(b"X")
                    await writer.drain()
                    await asyncio.sleep(0.2)

        trickling = asyncio.create_task(trickle())
        try:
            answer = await closed_within(reader, timeout=HEADER_TIMEOUT + 3)
        finally:
            trickling.cancel()
            writer.close()
        return answer, time.monotonic() - started

    attack = [asyncio.create_task(slow_head()) for _ in range(50)]
    await asyncio.sleep(0.5)
    await assert_serving(gateway)  # while 50 heads trickle in
    results = await asyncio.gather(*attack)

    for answer, lasted in results:
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert HEADER_TIMEOUT - 0.2 < lasted < HEADER_TIMEOUT + 2
    assert b"request-timeout" in results[0][0]


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    gateway: Gateway,
):
    reader, writer = await gateway.connect()
    started = time.monotonic()

    assert await closed_within(reader, timeout=HEADER_TIMEOUT + 2) == b""
    assert time.monotonic() - started > HEADER_TIMEOUT - 0.2
    writer.close()


# ------------------------------------------------------------ bodies and keep-alive


async def test_a_slow_body_gets_408_after_the_body_timeout(gateway: Gateway):
    reader, writer = await gateway.connect()
    started = time.monotonic()
    writer.write(
        b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"email":'
    )
    await writer.drain()

    status, headers, body = await read_response(reader, timeout=BODY_TIMEOUT + 3)

    assert BODY_TIMEOUT - 0.2 < time.monotonic() - started < BODY_TIMEOUT + 2
    assert status == 408
    assert headers["connection"] == "close"
    assert json.loads(body)["type"] == BASE + "request-timeout"
    assert await closed_within(reader, timeout=2) == b""
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    gateway: Gateway,
):
    reader, writer = await gateway.connect()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, _ = await read_response(reader, timeout=2)
    assert status == 200
    answered = time.monotonic()

    # uvicorn's default would keep it 5 s; the header timeout does not apply between requests.
    assert await closed_within(reader, timeout=KEEP_ALIVE_TIMEOUT + 1.5) == b""
    assert time.monotonic() - answered < HEADER_TIMEOUT
    writer.close()


# ------------------------------------------------------------ requests and connections at once


@pytest.fixture(scope="module")
async def small_gateway(tmp_path_factory) -> AsyncIterator[Gateway]:
    """Serves 2 requests and 6 connections at once; bodies may take 5 s."""
    async with running_gateway(
        tmp_path_factory.mktemp("small-gateway"),
        GATEWAY_MAX_CONCURRENT_REQUESTS="2",
        GATEWAY_MAX_CONNECTIONS="6",
        GATEWAY_BODY_TIMEOUT_SECONDS="5",
    ) as running:
        yield running


async def test_requests_beyond_the_concurrency_limit_get_503_at_once(small_gateway: Gateway):
    # Two requests in flight: their bodies are still arriving.
    held = [await small_gateway.connect() for _ in range(2)]
    for _, writer in held:
        writer.write(b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
        await writer.drain()
    await asyncio.sleep(0.3)

    async with httpx.AsyncClient(base_url=small_gateway.url, timeout=2) as client:
        started = time.monotonic()
        refused = await client.get("/healthz")
        assert time.monotonic() - started < 1
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["type"] == BASE + "service-unavailable"

        for _, writer in held:
            writer.close()
        await asyncio.sleep(0.3)
        assert (await client.get("/healthz")).status_code == 200


async def test_connections_beyond_the_limit_get_503_and_are_closed(small_gateway: Gateway):
    idle = [await small_gateway.connect() for _ in range(6)]
    await asyncio.sleep(0.2)

    reader, writer = await small_gateway.connect()
    status, headers, body = await read_response(reader, timeout=2)
    assert status == 503
    assert headers["retry-after"] == "2"
    assert json.loads(body)["type"] == BASE + "service-unavailable"
    assert await closed_within(reader, timeout=2) == b""
    writer.close()

    for _, idle_writer in idle:
        idle_writer.close()
    await asyncio.sleep(0.3)
    await assert_serving(small_gateway)


# ------------------------------------------------------------ shutdown during a stream


async def test_sigterm_ends_an_open_stream_with_a_503_error_event(tmp_path, backends: FakeBackends):
    settings = _settings()
    token, _ = issue_access_token(settings, str(uuid.uuid4()))
    backends.stories.hold_after_text = asyncio.Event()  # the model never finishes
    addresses = {
        f"{name}_ADDR": backends.address for name in ("USERS", "STORIES", "GENERATION", "BILLING")
    }
    async with running_gateway(
        tmp_path,
        **addresses,
        JWT_SECRET=settings.jwt_secret.get_secret_value(),
        SHUTDOWN_GRACE_SECONDS="1",
    ) as gateway:
        text = ""
        async with (
            httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
            client.stream(
                "POST",
                f"/v1/stories/{uuid.uuid4()}/continue",
                json={},
                headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
            ) as response,
        ):
            assert response.status_code == 200
            chunks = response.aiter_text()
            while text.count("event: token") < len(CONTINUATION_PIECES):
                text += await anext(chunks)
            gateway.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            async for chunk in chunks:
                text += chunk
        ended_after = time.monotonic() - signalled
        exit_code = await asyncio.to_thread(gateway.process.wait, 10)

    events = sse_events(text)
    assert [kind for kind, _ in events] == ["token", "token", "error"]
    problem = events[-1][1]
    assert (problem["type"], problem["status"]) == (BASE + "service-unavailable", 503)
    assert problem["retry_after"] == 2
    assert sse_fields(text)[-1]["retry"] == "2000"
    # Within the grace period (1 s), not cut by it.
    assert ended_after < 1.0
    # uvicorn re-raises the SIGTERM it handled once it has shut down.
    assert exit_code in (0, -signal.SIGTERM), gateway.log.read_text()
    assert "Application shutdown complete" in gateway.log.read_text()
    backends.stories.hold_after_text.set()


async def test_a_stories_shutdown_mid_stream_ends_it_with_a_503_error_event(
    api, backends: FakeBackends, auth
):
    backends.stories.hold_after_text = asyncio.Event()
    streaming = asyncio.create_task(
        api.post(
            f"/v1/stories/{uuid.uuid4()}/continue",
            headers={**auth, "Accept": "text/event-stream"},
        )
    )
    while not backends.recorder.calls:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)

    await backends.server.stop(0)  # what the stories service does when its grace runs out
    response = await asyncio.wait_for(streaming, timeout=5)

    assert response.status_code == 200
    events = sse_events(response.text)
    assert [kind for kind, _ in events] == ["token", "token", "error"]
    problem = events[-1][1]
    assert (problem["type"], problem["status"]) == (BASE + "service-unavailable", 503)
    assert problem["retry_after"] == 2
