"""P1 read: `GET /v1/stories/{id}` through the gateway (gateway -> stories ->
Postgres) against bench/baselines/read_app.py (one FastAPI + asyncpg process:
the same JWT check, the same two queries, byte-identical JSON), on the same
database, alternated in one run.

Throughput: closed loop, `--read-concurrency` keep-alive connections.
Added latency: open loop at half the gateway's throughput, both sides at the
same rate; added p50 = gateway p50 - baseline p50.
CPU per read: each process's CPU time over the throughput legs divided by the
reads served; on a machine shared with other work it is steadier than the
throughput itself.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fabula_common.testing import free_port
from fabula_devtools.stack import ADMIN_URL, stack_environment, start_stack, stop_stack
from sqlalchemy.engine import make_url

TARGET_RATIO = 0.6
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TARGET_ADDED_P50_MS = 1.5
ROOT = Path(__file__).resolve().parent.parent


class Connection:
    """A minimal HTTP/1.1 keep-alive client: the load generator must cost
    far less than what it measures (httpx would be the bottleneck)."""

    def __init__(self, url: str, path: str, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def get(self) -> bytes:
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def closed_loop(url: str, path: str, token: str, concurrency: int, seconds: float) -> float:
    """Requests per second with `concurrency` connections asking back to back."""
    connections = [Connection(url, path, token) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(connection: Connection) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await connection.get()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in connections))
    elapsed = time.perf_counter() - started
    for c in connections:
        c.close()
    return done / elapsed


async def open_loop(url: str, path: str, token: str, rate: float, seconds: float) -> list[float]:
    """Latencies of requests started at a steady `rate` per second (a free
    connection from a pool; more are opened when all are busy)."""
    idle: list[Connection] = []
    latencies: list[float] = []
    tasks = []

    async def one() -> None:
        connection = idle.pop() if idle else Connection(url, path, token)
        if not hasattr(connection, "writer"):
            await connection.open()
        started = time.perf_counter()
        await connection.get()
        latencies.append(time.perf_counter() - started)
        idle.append(connection)

    for _ in range(8):  # warm connections
        c = Connection(url, path, token)
        await c.open()
        idle.append(c)
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    for c in idle:
        c.close()
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def start_baseline(stack_env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    database = make_url(ADMIN_URL).set(database=stack_env["FABULA_DATABASE_NAME"])
    port = free_port()
    env = {
        **os.environ,
        "BASELINE_DATABASE_URL": database.render_as_string(hide_password=False),
        "JWT_SECRET": stack_env["JWT_SECRET"],
        "JWT_ISSUER": stack_env.get("JWT_ISSUER", "fabula"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.baselines.read_app:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/docs", timeout=1)
            return process, url
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the baseline did not start") from None
            time.sleep(0.2)


def prepare_story(base_url: str) -> tuple[str, str]:
    """A user and a story with three segments; (token, path)."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        reply = http.post("/v1/auth/register", json={"email": f"read-{time.time_ns()}@example.com",
                                                      "password": "benchmark-password"})
        reply.raise_for_status()
        token = reply.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        story = http.post("/v1/stories", json={"genre": "fantasy", "characters": ["Ilsa"]}, headers=auth)
        story.raise_for_status()
        for _ in range(2):
            http.post(f"/v1/stories/{story.json()['id']}/continue", json={}, headers=auth).raise_for_status()
    return token, f"/v1/stories/{story.json()['id']}"


async def measure(sides: dict[str, str], path: str, token: str, concurrency: int, seconds: float,
                  rounds: int, pids: dict[str, dict[str, int]]) -> dict:
    """`pids`: per side, the processes whose CPU per read is reported."""
    bodies = {}
    for name, url in sides.items():
        c = Connection(url, path, token)
        await c.open()
        bodies[name] = await c.get()
        c.close()
    if len(set(bodies.values())) != 1:
        raise AssertionError(f"the sides answer differently: {bodies}")

    throughput: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, dict[str, list[float]]] = {
        name: {process: [] for process in pids[name]} for name in sides
    }
    for name, url in sides.items():  # warm up
        await closed_loop(url, path, token, concurrency, 1.0)
    for _ in range(rounds):
        for name, url in sides.items():
            before = {process: cpu_seconds(pid) for process, pid in pids[name].items()}
            started = time.perf_counter()
            rate = await closed_loop(url, path, token, concurrency, seconds)
            reads = rate * (time.perf_counter() - started)
            throughput[name].append(rate)
            for process, pid in pids[name].items():
                used = cpu_seconds(pid) - before[process]
                cpu[name][process].append(round(used / reads * 1000, 3))
    best = {name: max(values) for name, values in throughput.items()}

    rate = best["gateway"] / 2
    latencies: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, url in sides.items():
            latencies[name] += await open_loop(url, path, token, rate, seconds)
    return {
        "response_bytes": len(bodies["gateway"]),
        "throughput_rps": {name: [round(v, 1) for v in values] for name, values in throughput.items()},
        "cpu_ms_per_read": cpu,
        "half_load_rate_rps": round(rate, 1),
        "half_load_latency_ms": {
            name: {"p50": p(values, 0.5), "p95": p(values, 0.95), "n": len(values)}
            for name, values in latencies.items()
        },
    }


def run(args) -> dict:
    concurrency = getattr(args, "read_concurrency", 16)
    seconds = getattr(args, "read_seconds", 5.0)
    rounds = getattr(args, "read_rounds", 2)
    log = Path(tempfile.mkdtemp(prefix="fabula-bench-read-")) / "stack.log"
    stack = start_stack(stack_environment(GRPC_DEADLINE_SECONDS="10"), log)
    baseline = None
    try:
        token, path = prepare_story(stack.base_url)
        baseline, baseline_url = start_baseline(stack.env)
        pids = {
            "baseline": {"baseline": baseline.pid},
            "gateway": {name: stack.children[name] for name in ("gateway", "stories")},
        }
        figures = asyncio.run(
            measure({"baseline": baseline_url, "gateway": stack.base_url}, path, token,
                    concurrency, seconds, rounds, pids)
        )
    finally:
        if baseline is not None:
            baseline.terminate()
            baseline.wait(timeout=10)
        stop_stack(stack)

    gateway_rps = statistics.fmean(figures["throughput_rps"]["gateway"])
    baseline_rps = statistics.fmean(figures["throughput_rps"]["baseline"])
    ratio = round(gateway_rps / baseline_rps, 3)
    half = figures["half_load_latency_ms"]
    added_p50 = round(half["gateway"]["p50"] - half["baseline"]["p50"], 3)
    return {
        "what": "GET /v1/stories/{id} (3 segments) through gateway + stories vs one FastAPI + asyncpg process",
        "concurrency": concurrency,
        "seconds_per_leg": seconds,
        "rounds": rounds,
        **figures,
        "figure": {"throughput_ratio": ratio, "added_p50_ms_at_half_load": added_p50},
        "baseline": {"throughput_rps": round(baseline_rps, 1), "p50_ms_at_half_load": half["baseline"]["p50"]},
        "target": {"throughput_ratio": f">= {TARGET_RATIO}", "added_p50_ms_at_half_load": f"<= {TARGET_ADDED_P50_MS}",
                   "round_trips_per_read": "<= 2 (asserted by services/stories/tests/test_stories.py: 1)"},
        "met": ratio >= TARGET_RATIO and added_p50 <= TARGET_ADDED_P50_MS,
    }
