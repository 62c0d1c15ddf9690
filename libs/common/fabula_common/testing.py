"""Helpers for tests that run real Postgres, NATS and gRPC (used by conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
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


class ConnectionCutter:
    """A TCP proxy in front of Postgres that can cut every connection and
    refuse new ones (a network blip, a failover), then let them through again."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.blocked = False
        self._transports: set[asyncio.Transport] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self._transports |= {writer.transport, up_writer.transport}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        self.blocked = True
        for transport in self._transports:
            transport.abort()
        self._transports.clear()

    def restore(self) -> None:
        self.blocked = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb, then pg_ctl) on a free
    port, so a test may stop it, kill it or freeze it without touching the
    shared server. Trust authentication, superuser `postgres`; the data
    directory is removed by `cleanup()`.

    The binaries are found with `pg_config --bindir`, on PATH, or in the
    Debian layout (/usr/lib/postgresql/<version>/bin); `PG_BINDIR` overrides.
    Run as root (a container), the cluster runs as the `postgres` user,
    since Postgres refuses to run as root.
    """

    def __init__(self, port: int | None = None, settings: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        # Extra server settings (`-c name=value`), e.g. max_connections for a
        # whole stack of services on one cluster.
        self.settings = dict(settings or {})
        self.bin_dir = find_postgres_bin_dir()
        self._user = "postgres" if os.geteuid() == 0 else None
        self.root = tempfile.mkdtemp(prefix="fabula-pg-")
        self.data_dir = os.path.join(self.root, "data")
        self.log_file = os.path.join(self.root, "postgres.log")
        if self._user:
            record = pwd.getpwnam(self._user)
            os.chown(self.root, record.pw_uid, record.pw_gid)
        self._run("initdb", "-D", self.data_dir, "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [os.path.join(self.bin_dir, program), *args],
            capture_output=True, text=True, timeout=timeout, user=self._user, cwd=self.root,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> None:
        """Start, and return once it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self._run("pg_ctl", "start", "-D", self.data_dir, "-l", self.log_file, "-w", "-t", "30",
                  "-o", options)

    def stop(self, mode: str = "fast") -> None:
        """`smart`, `fast` (sessions are terminated) or `immediate` (a crash:
        recovery runs at the next start). Nothing if it is not running."""
        if self.running:
            self.thaw()
            self._run("pg_ctl", "stop", "-D", self.data_dir, "-m", mode, "-w", "-t", "30")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    @property
    def running(self) -> bool:
        return self._postmaster_pid() is not None

    def _postmaster_pid(self) -> int | None:
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as pid_file:
                pid = int(pid_file.readline())
        except (OSError, ValueError):
            return None
        return pid if os.path.exists(f"/proc/{pid}") else None

    def _processes(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, ...)."""
        postmaster = self._postmaster_pid()
        if postmaster is None:
            return []
        pids = [postmaster]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if parent == postmaster:
                    pids.append(int(entry))
        return pids

    def freeze(self) -> None:
        """SIGSTOP every process of the cluster: connections stay open and
        nothing answers (a hung server or a network partition)."""
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, signum: int) -> None:
        for pid in self._processes():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass  # a backend that ended since it was listed

    def cleanup(self) -> None:
        """Stop it (immediately) and delete its files."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def find_postgres_bin_dir() -> str:
    """Where initdb and pg_ctl are."""
    configured = os.environ.get("PG_BINDIR")
    if configured:
        return configured
    pg_config = shutil.which("pg_config")
    if pg_config:
        bin_dir = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if os.path.exists(os.path.join(bin_dir, "initdb")):
            return bin_dir
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return os.path.dirname(candidates[0])
    raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found; set PG_BINDIR")


class PrivateNats:
    """A nats-server with JetStream of the test's own on a free port, kept
    in `store` so a restart finds its streams again."""

    def __init__(self, store: str | os.PathLike[str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.store = str(store)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start, and return once it accepts connections."""
        self.process = subprocess.Popen(
            [shutil.which("nats-server") or "nats-server", "-a", "127.0.0.1", "-p", str(self.port),
             "-js", "-sd", self.store],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _accepts_connections(self.port):
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("private nats-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL, as in a crash: nothing is flushed or said to clients."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
