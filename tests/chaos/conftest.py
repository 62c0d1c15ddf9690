"""Chaos harness: the real launcher and processes on a PRIVATE Postgres
cluster (initdb/pg_ctl on a free port) and a PRIVATE nats-server, so faults
can be injected into both without touching anything else; real users driving
the REST API from worker threads while the fault happens; and a reconciliation
of every user's money and stories read straight from the three schemas once
the system has settled.

Everything here is self-contained: the private servers live in temporary
directories removed at the end.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import asyncpg
import httpx
import pytest
from fabula_common.testing import free_port
from fabula_devtools.stack import Stack, stack_environment, start_stack, stop_stack


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[-3]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PrivatePostgres:
    """A throwaway Postgres cluster on 127.0.0.1:<free port>, trust auth, no
    Unix socket. Postgres refuses to run as root, so under root it runs as
    the `postgres` system user."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="fabula-chaos-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self._run_as, *args], capture_output=True, text=True, check=check, timeout=60)

    def init(self) -> None:
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
                   "-c fsync=off -c max_connections=200")
        result = self._run(str(self.bin_dir / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log),
                           "-w", "-t", "30", "-o", options, check=False)
        assert result.returncode == 0, f"private postgres did not start: {result.stderr}\n{self.log_tail()}"

    def stop(self, mode: str = "fast") -> None:
        """`fast`: clients are disconnected, a clean shutdown; `immediate`: the
        server quits at once, as in a crash (recovery runs at the next start)."""
        assert mode in {"smart", "fast", "immediate"}
        self._run(str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30",
                  check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class PrivateNats:
    port: int
    store: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("nats-server") or "nats-server", "-a", "127.0.0.1", "-p", str(self.port),
             "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            assert time.monotonic() < deadline, "private nats-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    server = PrivatePostgres(bin_dir)
    server.init()
    server.start()
    yield server
    server.destroy()


def _nats(tmp: Path) -> PrivateNats:
    if not shutil.which("nats-server"):
        pytest.skip("nats-server binary not installed")
    server = PrivateNats(free_port(), tmp / "jetstream")
    server.start()
    return server


@pytest.fixture(scope="session")
def session_nats(tmp_path_factory) -> Iterator[PrivateNats]:
    server = _nats(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture
def private_nats(tmp_path) -> Iterator[PrivateNats]:
    server = _nats(tmp_path)
    yield server
    server.stop()


# Settings that make every fault play out in seconds rather than minutes.
# Leases and reservation lifetimes keep their defaults unless a scenario needs
# otherwise: what a user waits for after a crash is what the suite measures.
CHAOS_SETTINGS = {
    "GENERATION_DEADLINE_SECONDS": "8",
    "GENERATION_OFFLINE_TOKEN_DELAY_MS": "15",
    "OUTBOX_RETRY_BASE_SECONDS": "0.2",
    "OUTBOX_RETRY_MAX_SECONDS": "1",
    "CONSUMER_RETRY_BASE_SECONDS": "0.5",
    "CONSUMER_RETRY_MAX_SECONDS": "2",
    "BILLING_RESERVATION_SWEEP_SECONDS": "0.5",
    "FABULA_RESTART_BACKOFF_INITIAL_SECONDS": "0.2",
    # Enough generations that nobody runs out while the fault plays.
    "BILLING_PLANS_JSON": json.dumps({"free": {"generations_limit": 40, "cost_limit_usd": "10"}}),
}


def start_chaos_stack(postgres: PrivatePostgres, nats_server: PrivateNats, log_path: Path,
                      **overrides: str) -> Stack:
    env = stack_environment(
        POSTGRES_ADMIN_URL=postgres.admin_url,
        NATS_URL=nats_server.url,
        **{**CHAOS_SETTINGS, **overrides},
    )
    return start_stack(env, log_path, timeout=120)


@pytest.fixture(scope="session")
def chaos_stack(private_postgres, session_nats, tmp_path_factory) -> Iterator[Stack]:
    """One stack shared by the scenarios that need no settings of their own;
    each scenario has users of its own and reconciles only them."""
    stack = start_chaos_stack(private_postgres, session_nats, tmp_path_factory.mktemp("chaos") / "fabula.log")
    yield stack
    stop_stack(stack)


# --- Users at work --------------------------------------------------------------


@dataclass
class User:
    email: str
    password: str
    user_id: str
    access_token: str
    served: int = 0  # generations the user received: stories created, segments streamed
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def note(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def register(stack: Stack, count: int) -> list[User]:
    users = []
    with stack.client() as http:
        for _ in range(count):
            email, password = f"chaos-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery"
            response = http.post("/v1/auth/register",
                                 json={"email": email, "password": password, "full_name": "Chaos Writer"})
            assert response.status_code == 201, response.text
            body = response.json()
            users.append(User(email, password, body["user"]["id"], body["access_token"]))
        # Billing opens the account from the UserRegistered event.
        for user in users:
            wait_for(lambda u=user: http.get("/v1/usage", headers=u.headers).status_code == 200, 20)
    return users


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def wait_ready(stack: Stack, timeout: float = 30) -> None:
    with stack.client() as http:
        wait_for(lambda: http.get("/readyz", timeout=3).json().get("status") == "ready", timeout)


class Workload:
    """Each user in a thread of their own: create a story, then continue it
    (streamed, as the apps do) until told to stop, whatever the answers."""

    def __init__(self, stack: Stack, users: list[User], before_each: Callable[[User, httpx.Client], None] | None = None):
        self.stack = stack
        self.users = users
        self.before_each = before_each
        self.stop = threading.Event()
        self.streaming = {u.user_id: threading.Event() for u in users}
        self._threads = [threading.Thread(target=self._work, args=(u,), daemon=True) for u in users]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def wait_streaming(self, timeout: float = 20) -> None:
        """Until every user has a continuation streaming."""
        for event in self.streaming.values():
            assert event.wait(timeout), "not every user got a stream going"

    def _work(self, user: User) -> None:
        story_id = None
        with httpx.Client(base_url=self.stack.base_url, timeout=20) as http:
            while not self.stop.is_set():
                try:
                    if self.before_each:
                        self.before_each(user, http)
                    if story_id is None:
                        response = http.post("/v1/stories", json={"genre": "mystery"}, headers=user.headers)
                        user.note(str(response.status_code))
                        if response.status_code == 201:
                            user.served += 1
                            story_id = response.json()["id"]
                    elif not self._continue(user, http, story_id):
                        story_id = None  # locked or gone: the user starts another one
                except (httpx.HTTPError, OSError) as exc:
                    user.note(type(exc).__name__)
                    time.sleep(0.2)
                time.sleep(0.05)

    def _continue(self, user: User, http: httpx.Client, story_id: str) -> bool:
        with http.stream("POST", f"/v1/stories/{story_id}/continue", json={},
                         headers={**user.headers, "Accept": "text/event-stream"}) as response:
            if response.status_code != 200:
                response.read()
                user.note(str(response.status_code))
                time.sleep(0.2)  # busy (409), quota (402) or a 503: try again shortly
                return response.status_code not in {404, 409}
            event = None
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                    if event == "token":
                        self.streaming[user.user_id].set()
                    elif event == "segment":
                        user.served += 1
                        user.note("segment")
                    elif event == "error":
                        user.note("stream-error")
            if event not in {"segment", "error"}:
                user.note("stream-cut")
        return True


# --- Reconciliation ---------------------------------------------------------------


@dataclass
class Figures:
    served: int
    stored: int
    recorded: int  # generation.generations completed
    charged: int  # billing.accounts.generations_used
    ledger: int  # billing.usage_ledger rows counted
    limit: int | None
    locks_left: int
    reservations_left: int

    @property
    def balanced(self) -> bool:
        return self.stored == self.charged == self.ledger

    @property
    def settled(self) -> bool:
        return self.balanced and self.locks_left == 0 and self.reservations_left == 0


def _database_url(stack: Stack) -> str:
    admin = stack.env["POSTGRES_ADMIN_URL"].rsplit("/", 1)[0]
    return f"{admin}/{stack.env['FABULA_DATABASE_NAME']}"


async def _figures(stack: Stack, users: list[User]) -> dict[str, Figures]:
    conn = await asyncpg.connect(_database_url(stack), timeout=5)
    try:
        found = {}
        for user in users:
            uid = uuid.UUID(user.user_id)
            account = await conn.fetchrow(
                "SELECT plan, generations_used FROM billing.accounts WHERE user_id = $1", uid)
            found[user.user_id] = Figures(
                served=user.served,
                stored=await conn.fetchval(
                    "SELECT count(*) FROM stories.segments s JOIN stories.stories t ON t.id = s.story_id"
                    " WHERE t.user_id = $1", uid),
                recorded=await conn.fetchval(
                    "SELECT count(*) FROM generation.generations WHERE user_id = $1 AND outcome = 'completed'",
                    user.user_id),
                charged=account["generations_used"] if account else 0,
                ledger=await conn.fetchval(
                    "SELECT count(*) FROM billing.usage_ledger WHERE user_id = $1 AND counted", uid),
                limit=_plan_limit(stack, account["plan"] if account else "free"),
                locks_left=await conn.fetchval(
                    "SELECT count(*) FROM stories.stories WHERE user_id = $1 AND writing_until > now()", uid),
                reservations_left=await conn.fetchval(
                    "SELECT count(*) FROM billing.reservations WHERE user_id = $1 AND status = 'reserved'", uid),
            )
        return found
    finally:
        await conn.close()


def _plan_limit(stack: Stack, plan: str) -> int | None:
    plans = json.loads(stack.env.get("BILLING_PLANS_JSON") or "{}")
    if plan in plans:
        return plans[plan].get("generations_limit")
    return {"free": 5, "pro": 50}.get(plan)


class Reconciler:
    """Waits (bounded) for the users' figures to settle, prints them in one
    line per scenario, and checks the invariants."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request

    def figures(self, stack: Stack, users: list[User]) -> dict[str, Figures]:
        return asyncio.run(_figures(stack, users))

    def settle(self, stack: Stack, users: list[User], timeout: float = 6) -> dict[str, Figures]:
        deadline = time.monotonic() + timeout
        while True:
            figures = self.figures(stack, users)
            if all(f.settled for f in figures.values()) or time.monotonic() > deadline:
                return figures
            time.sleep(0.5)

    def report(self, scenario: str, figures: dict[str, Figures], extra: str = "") -> None:
        def total(attr: str) -> int:
            return sum(getattr(f, attr) for f in figures.values())

        over = sum(1 for f in figures.values() if f.limit is not None and f.charged > f.limit)
        line = (f"CHAOS {scenario}: users={len(figures)} served={total('served')} stored={total('stored')} "
                f"recorded={total('recorded')} charged={total('charged')} ledger={total('ledger')} "
                f"over_plan={over} locks_left={total('locks_left')} "
                f"reservations_left={total('reservations_left')}")
        if extra:
            line += f" {extra}"
        # Shown whatever -r/-s say: capturing is suspended around the write.
        plugins = self.request.config.pluginmanager
        terminal, capture = plugins.getplugin("terminalreporter"), plugins.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            if terminal is not None:
                terminal.write_line("")
                terminal.write_line(line)
            else:
                print(line, flush=True)

    def check(self, stack: Stack, users: list[User], scenario: str, timeout: float = 6,
              extra: Callable[[], str] | None = None) -> dict[str, Figures]:
        figures = self.settle(stack, users, timeout)
        self.report(scenario, figures, extra() if extra else "")
        per_user = {u.email: (f, u.outcomes) for u, f in zip(users, figures.values(), strict=True)}
        for email, (f, outcomes) in per_user.items():
            assert f.stored >= f.served, f"{email}: served more than stored: {f} {outcomes}"
            assert f.limit is None or f.charged <= f.limit, f"{email}: plan exceeded: {f}"
            assert f.stored == f.charged == f.ledger, (
                f"{email}: stored {f.stored}, charged {f.charged}, ledger {f.ledger}: {f} {outcomes}")
            assert f.locks_left == 0, f"{email}: {f.locks_left} stories still locked: {f}"
            assert f.reservations_left == 0, f"{email}: {f.reservations_left} reservations held: {f}"
        return figures


@pytest.fixture
def reconcile(request) -> Reconciler:
    return Reconciler(request)


@pytest.fixture
def kill_and_wait_restart():
    def kill(stack: Stack, name: str) -> None:
        pid = stack.find_children()[name]
        os.kill(pid, signal.SIGKILL)
        stack.wait_restarted(name, pid, timeout=20)

    return kill


@pytest.fixture(scope="session")
def chaos():
    """The harness's helpers, for the scenarios (conftest modules are not importable)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        Workload=Workload, register=register, wait_for=wait_for, wait_ready=wait_ready,
        start_stack=start_chaos_stack, database_url=_database_url,
    )
