"""A whole Fabula started by the real launcher (`make run`'s) in a private
corner: its own database, NATS stream, subject prefix and free ports. Used by
the end-to-end tests and the benchmarks; everything is removed by stop_stack().
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
from fabula_common.provision import SERVICES, drop_database
from fabula_common.testing import free_port

ADMIN_URL = os.environ.get("POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SHARED_NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
# Variables the outer test session may have set for in-process tests; a stack
# derives its own.
_INHERITED_NOT = ("_DATABASE_URL", "_ADDR", "_GRPC_PORT", "_METRICS_PORT", "NATS_STREAM", "NATS_SUBJECT_PREFIX", "NATS_URL")


@dataclass
class Stack:
    base_url: str
    process: subprocess.Popen
    env: dict[str, str]
    log_path: Path
    children: dict[str, int] = field(default_factory=dict)

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def find_children(self) -> dict[str, int]:
        """pid of each process the launcher started, by name."""
        found = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.process.pid and b"-m" in cmdline:
                module = cmdline[cmdline.index(b"-m") + 1].decode()
                found[module.removeprefix("fabula_")] = int(proc.name)
        return found

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 30) -> int:
        """pid of `name` once the launcher has started it again after `old_pid` died."""
        deadline = time.monotonic() + timeout
        while True:
            pid = self.find_children().get(name)
            if pid is not None and pid != old_pid:
                self.children[name] = pid
                return pid
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} was not restarted within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)


# For test stacks, which run beside other stacks and the suite on a small
# machine (CI has two cores): few idle database connections per process
# (Postgres has 100 in all), and time to start nine processes on a busy
# machine. Benchmarks keep the services' own pool sizes.
TEST_STACK = {
    "DB_POOL_SIZE": "2",
    "DB_MAX_OVERFLOW": "10",
    "FABULA_START_TIMEOUT_SECONDS": "180",
}


def stack_environment(**overrides: str) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.endswith(_INHERITED_NOT)}
    env.update(
        POSTGRES_ADMIN_URL=ADMIN_URL,
        FABULA_DATABASE_NAME=f"fabula_e2e_{run}",
        NATS_URL=SHARED_NATS_URL,
        NATS_STREAM=f"E2E_{run}",
        NATS_SUBJECT_PREFIX=f"e2e_{run}",
        FABULA_ENV="test",
        LOG_FORMAT="text",
        GATEWAY_PORT=str(free_port()),
        GATEWAY_METRICS_PORT=str(free_port()),
        GRPC_DEADLINE_SECONDS="3",
        SHUTDOWN_GRACE_SECONDS="3",
        JWT_SECRET=f"e2e-secret-{run}",
        # Photos in a folder of this stack's own (removed by stop_stack).
        MEDIA_STORAGE="local",
        MEDIA_LOCAL_DIR=tempfile.mkdtemp(prefix=f"fabula-media-{run}-"),
        MEDIA_SIGNING_SECRET=f"e2e-media-secret-{run}",
    )
    for service in SERVICES:
        env[f"{service.upper()}_GRPC_PORT"] = str(free_port())
        env[f"{service.upper()}_METRICS_PORT"] = str(free_port())
    for inherited in (
        "MISTRAL_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "STRIPE_API_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_API_BASE",
    ):
        env.pop(inherited, None)
    env.update(overrides)
    return env


def start_stack(env: dict[str, str], log_path: Path, timeout: float = 200) -> Stack:
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "fabula_devtools.run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    stack = Stack(f"http://127.0.0.1:{env['GATEWAY_PORT']}", process, env, log_path)
    deadline = time.monotonic() + timeout
    while "Fabula is up" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = stack.log_tail()
            stop_stack(stack)  # drops what it may have created
            raise AssertionError(f"stack did not start:\n{tail}")
        time.sleep(0.1)
    stack.children = stack.find_children()
    return stack


async def _delete_stream(nats_url: str, stream: str) -> None:
    try:
        # nats-py retries a refused first connection whatever its options
        # say: bound it, or a stack whose NATS is down could never be stopped.
        nc = await asyncio.wait_for(
            nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=0), timeout=5
        )
    except Exception:  # noqa: BLE001 - a private server already gone
        return
    try:
        await nc.jetstream().delete_stream(stream)
    except Exception:  # noqa: BLE001 - never created
        pass
    await nc.close()


def stop_stack(stack: Stack) -> int:
    """SIGTERM the launcher as Ctrl-C would; return its exit code."""
    if stack.process.poll() is None:
        # The launcher may have restarted some since they were first found.
        stack.children = stack.find_children() or stack.children
        stack.process.send_signal(signal.SIGTERM)
    try:
        code = stack.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        code = -9
    admin_url = stack.env.get("POSTGRES_ADMIN_URL", ADMIN_URL)
    try:
        asyncio.run(drop_database(admin_url, stack.env["FABULA_DATABASE_NAME"]))
    except OSError:
        pass  # a private server already gone, and the database with it
    asyncio.run(_delete_stream(stack.env["NATS_URL"], stack.env["NATS_STREAM"]))
    if stack.env.get("MEDIA_LOCAL_DIR"):
        shutil.rmtree(stack.env["MEDIA_LOCAL_DIR"], ignore_errors=True)
    return code
