"""`make run`: one command from a fresh clone to a running Fabula.

1. Checks that PostgreSQL and NATS (with JetStream) answer; if not, says so in
   one sentence with how to start them, and exits 1.
2. Provisions the database (database, one schema and login role per service)
   and runs every service's migrations as that service's role.
3. Starts the five services, the generation job worker, the media worker and the gateway with
   this process's environment, waits until the gateway's /readyz says every
   service is ready, and prints where the API is.
4. Restarts a child that dies (exits or is killed), as Kubernetes would:
   after a delay that doubles from FABULA_RESTART_BACKOFF_INITIAL_SECONDS up to
   FABULA_RESTART_BACKOFF_MAX_SECONDS and starts again from the initial one
   once the child has run FABULA_RESTART_STABLE_SECONDS; the other children
   keep serving meanwhile. Each restart prints one line naming the child,
   how it ended and the delay.
5. On Ctrl-C or SIGTERM stops the gateway, then the worker, then the services
   (each drains gracefully), and exits; nothing is restarted during shutdown. Children die
   with it even if it is killed outright (PR_SET_PDEATHSIG), so nothing is
   left behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import nats
from fabula_common import migrations
from fabula_common.provision import SERVICES, provision, service_database_url

DEFAULT_PORTS = {
    "users": 50051, "stories": 50052, "generation": 50053, "billing": 50054, "media": 50055,
}
PR_SET_PDEATHSIG = 1


# (name, module) of each child, in start order; they stop in reverse order, so
# the gateway stops taking requests first and the job worker ends its stage
# (and releases what it holds) while the services it calls are still up.
CHILDREN: tuple[tuple[str, str], ...] = (
    ("users", "fabula_users"),
    ("media", "fabula_media"),
    ("billing", "fabula_billing"),
    ("generation", "fabula_generation"),
    ("stories", "fabula_stories"),
    # Runs the long-form jobs: its own process, with generation's settings
    # (the environment every child gets). Not behind /readyz: it serves no
    # requests, and a dead worker's jobs wait for the next one (their lease).
    ("generation-worker", "fabula_generation.worker"),
    # Processes uploaded photos (media's settings), like the job worker.
    ("media-worker", "fabula_media.worker"),
    ("gateway", "fabula_gateway"),
)


class LaunchError(SystemExit):
    """A problem the user can fix; its message is the one sentence we print."""


@dataclass
class Child:
    name: str
    module: str
    env: dict[str, str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    # Delay before the next restart, and when that restart is due (None: running).
    backoff: float = 0.0
    restart_at: float | None = None
    # Deaths since the child last ran stably.
    crashes: int = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=self.env,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        self.started_at = time.monotonic()
        self.restart_at = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass(frozen=True)
class RestartPolicy:
    initial: float = 0.5
    maximum: float = 30.0
    # A child that ran this long before dying starts again from `initial`.
    stable: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> RestartPolicy:
        return cls(
            initial=float(env.get("FABULA_RESTART_BACKOFF_INITIAL_SECONDS", cls.initial)),
            maximum=float(env.get("FABULA_RESTART_BACKOFF_MAX_SECONDS", cls.maximum)),
            stable=float(env.get("FABULA_RESTART_STABLE_SECONDS", cls.stable)),
        )


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


class Supervisor:
    """Keeps the children running: one that dies is started again after a
    backoff delay, as a Kubernetes Deployment restarts a crashed container."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.children: list[Child] = []
        self.stopping = False

    def start(self, name: str, module: str, env: dict[str, str]) -> Child:
        child = Child(name, module, env)
        child.start()
        self.children.append(child)
        return child

    def check(self) -> None:
        """Schedule the restart of children that died; start those that are due."""
        now = time.monotonic()
        for child in self.children:
            if self.stopping:
                return
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.start()
                    print(f"make run: {child.name} restarted (pid {child.process.pid})", flush=True)
                continue
            if child.running:
                continue
            uptime = now - child.started_at
            if uptime >= self.policy.stable:
                child.crashes, child.backoff = 0, 0.0
            child.crashes += 1
            child.backoff = (
                self.policy.initial
                if not child.backoff
                else min(child.backoff * 2, self.policy.maximum)
            )
            child.restart_at = now + child.backoff
            ended = how_it_ended(child.process.returncode)
            if child.crashes >= 2:
                print(
                    f"make run: {child.name} {ended} after {uptime:.1f}s; it keeps crashing "
                    f"({child.crashes} times in a row, see its log above); "
                    f"restarting in {child.backoff:g}s",
                    flush=True,
                )
            else:
                print(
                    f"make run: {child.name} {ended} after {uptime:.1f}s; "
                    f"restarting in {child.backoff:g}s",
                    flush=True,
                )


def _die_with_parent() -> None:
    """In a child: get SIGTERM when the launcher dies, however it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def environment() -> dict[str, str]:
    """The environment every child gets: ours, plus what we derive for them."""
    env = dict(os.environ)
    admin_url = env.setdefault("POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    database = env.setdefault("FABULA_DATABASE_NAME", "fabula")
    for service, default_port in DEFAULT_PORTS.items():
        prefix = service.upper()
        port = env.setdefault(f"{prefix}_GRPC_PORT", str(default_port))
        env.setdefault(f"{prefix}_ADDR", f"127.0.0.1:{port}")
        env.setdefault(
            f"{prefix}_DATABASE_URL",
            service_database_url(admin_url, database, service, env.get(f"{prefix}_DB_PASSWORD")),
        )
    env.setdefault("GATEWAY_HOST", "127.0.0.1")
    env.setdefault("GATEWAY_PORT", "8000")
    # Prometheus metrics on a port of their own, beside the services' ones.
    env.setdefault("GATEWAY_METRICS_PORT", "9100")
    env.setdefault("NATS_URL", "nats://127.0.0.1:4222")
    # Photos in a local folder, sent and fetched through the gateway's signed URLs.
    env.setdefault("MEDIA_PUBLIC_URL", f"http://{env['GATEWAY_HOST']}:{env['GATEWAY_PORT']}")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or ''}".rstrip(":")


async def check_postgres(admin_url: str) -> None:
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://", 1).replace("postgres://", "postgresql://", 1)
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except Exception as exc:  # noqa: BLE001 - any failure is "not reachable"
        raise LaunchError(
            f"PostgreSQL is not reachable at {_where(admin_url)} ({type(exc).__name__}: {exc}); "
            "start it (for example `sudo pg_ctlcluster 15 main start`, or `docker compose up -d postgres`) "
            "or point POSTGRES_ADMIN_URL at a running server, then run `make run` again."
        ) from None
    await conn.close()


async def _quiet(_exc: Exception) -> None:
    """nats-py prints every connection error with a traceback; we say it once."""


async def check_nats(url: str) -> None:
    hint = (
        "start it with JetStream enabled (for example `nats-server -js`, or `docker compose up -d nats`) "
        "or point NATS_URL at a running server, then run `make run` again."
    )
    try:
        # nats-py retries a refused first connection forever: bound it.
        nc = await asyncio.wait_for(nats.connect(url, connect_timeout=2, error_cb=_quiet), timeout=3)
    except Exception as exc:  # noqa: BLE001
        raise LaunchError(f"NATS is not reachable at {_where(url)} ({type(exc).__name__}); {hint}") from None
    try:
        await nc.jetstream().account_info()
    except Exception:  # noqa: BLE001
        raise LaunchError(f"NATS at {_where(url)} answers but JetStream is not enabled; {hint}") from None
    finally:
        await nc.close()


def check_ports_free(env: dict[str, str]) -> None:
    wanted = {f"{s} gRPC": int(env[f"{s.upper()}_GRPC_PORT"]) for s in SERVICES}
    wanted["gateway"] = int(env["GATEWAY_PORT"])
    for name, variable in [(f"{s} metrics", f"{s.upper()}_METRICS_PORT") for s in SERVICES] + [
        ("gateway metrics", "GATEWAY_METRICS_PORT")
    ]:
        if int(env.get(variable) or 0):
            wanted[name] = int(env[variable])
    for name, port in wanted.items():
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                raise LaunchError(
                    f"Port {port} ({name}) is already in use; is Fabula already running? "
                    "Stop it, or choose other ports (see the configuration table in README.md)."
                ) from None


def prepare_database(env: dict[str, str]) -> None:
    passwords = {s: env[f"{s.upper()}_DB_PASSWORD"] for s in SERVICES if env.get(f"{s.upper()}_DB_PASSWORD")}
    asyncio.run(provision(env["POSTGRES_ADMIN_URL"], env["FABULA_DATABASE_NAME"], passwords))
    os.environ.update({k: v for k, v in env.items() if k.endswith("_DATABASE_URL")})
    for service in SERVICES:
        migrations.upgrade(service)
    print(f"database {env['FABULA_DATABASE_NAME']}: schemas and roles ready, migrations at head", flush=True)


def terminal_hint(base_url: str) -> str:
    """How to call the `fabula` command (installed in the same .venv) at this API."""
    command = ".venv/bin/fabula --help"
    return command if base_url == "http://127.0.0.1:8000" else f"FABULA_API_URL={base_url} {command}"


def wait_ready(base_url: str, supervisor: Supervisor, timeout: float, stop_requested) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if stop_requested():
            return
        # A child that crashes while starting is restarted with backoff too;
        # one that never comes up ends the launch at the deadline.
        supervisor.check()
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
                body = response.read().decode(errors="replace")
                # 200 already while some services still start ("degraded"):
                # up means every one of them serving.
                if json.loads(body).get("status") == "ready":
                    return
                last = body[:300]
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")[:300]
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    crashing = [c.name for c in supervisor.children if c.crashes]
    if crashing:
        last = f"{', '.join(crashing)} kept crashing (see the log above); last answer: {last}"
    raise LaunchError(f"Fabula did not become ready within {timeout:.0f}s: {last}")


def stop_all(children: list[Child], grace: float) -> None:
    """In reverse start order: the gateway first (it stops taking requests),
    then the worker, then the services."""
    for child in reversed(children):
        if child.process is None:
            continue
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
        try:
            child.process.wait(timeout=grace + 5)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


def main() -> None:
    _die_with_parent()  # if `make` itself is killed, we are told and clean up
    stop_requested = False

    def request_stop(signum, _frame) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    env = environment()
    supervisor = Supervisor(RestartPolicy.from_env(env))
    grace = float(env.get("SHUTDOWN_GRACE_SECONDS", "10"))
    try:
        asyncio.run(check_postgres(env["POSTGRES_ADMIN_URL"]))
        asyncio.run(check_nats(env["NATS_URL"]))
        check_ports_free(env)
        prepare_database(env)
        for name, module in CHILDREN:
            supervisor.start(name, module, env)
        base_url = f"http://{env['GATEWAY_HOST']}:{env['GATEWAY_PORT']}"
        timeout = float(env.get("FABULA_START_TIMEOUT_SECONDS", "60"))
        wait_ready(base_url, supervisor, timeout, lambda: stop_requested)
        if not stop_requested:
            print(f"Fabula is up: API {base_url}  docs {base_url}/docs  (Ctrl-C to stop)", flush=True)
            print(f"From a terminal: {terminal_hint(base_url)}", flush=True)
        while not stop_requested:
            supervisor.check()
            time.sleep(0.2)
        print("stopping Fabula...", flush=True)
    except LaunchError as exc:
        supervisor.stopping = True
        print(f"make run: {exc.code}", file=sys.stderr, flush=True)
        stop_all(supervisor.children, grace)
        sys.exit(1)
    supervisor.stopping = True
    stop_all(supervisor.children, grace)
    print("Fabula stopped.", flush=True)


if __name__ == "__main__":
    main()
