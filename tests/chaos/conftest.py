"""Chaos harness: the real launcher and processes on a PRIVATE Postgres
cluster (initdb/pg_ctl on a free port) and a PRIVATE nats-server, so faults
can be injected into both without touching anything else; real users driving
the REST API from worker threads while the fault happens; and a reconciliation
of every user's money and stories read straight from the three schemas once
the system has settled.

The private servers are fabula_common.testing's PrivatePostgres and
PrivateNats; they live in temporary directories removed at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
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
from fabula_common.testing import PrivateNats, PrivatePostgres
from fabula_devtools.stack import Stack, stack_environment, start_stack, stop_stack


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    try:
        server = PrivatePostgres(
            settings={
                # Five processes' pools, their health probes and the harness's own
                # connections: more than the default 100 under a reconnect wave.
                "max_connections": "200",
                # A commit must survive `pg_ctl stop -m immediate` as it would a
                # crash in production (fsync may stay off: the OS does not crash).
                "synchronous_commit": "on",
            }
        )
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def _nats(store: Path) -> PrivateNats:
    if not shutil.which("nats-server"):
        pytest.skip("nats-server binary not installed")
    server = PrivateNats(store)
    server.start()
    return server


@pytest.fixture(scope="module")
def session_nats(tmp_path_factory) -> Iterator[PrivateNats]:
    server = _nats(tmp_path_factory.mktemp("nats") / "jetstream")
    yield server
    server.stop()


@pytest.fixture
def private_nats(tmp_path) -> Iterator[PrivateNats]:
    server = _nats(tmp_path / "jetstream")
    yield server
    server.stop()


# Settings that make every fault play out in seconds rather than minutes: the
# timers that free a crashed writer's story (write lease, claim sweep), settle
# a crashed generation (abandon sweep) and close abusive connections (gateway
# limits) are shortened, so what the suite measures is how the system recovers,
# not how long the defaults are. The reservation expiry stays at its default
# (a day): it is a safety net for producers that lost their records, and
# nothing here may depend on it.
# A stream of the built-in generator takes about 2.7 s here, 3.5 s under the
# login storm, and longer in CI beside another test worker (one storm user
# saw its stream cut by the 6 s this was): the deadline leaves room for a
# loaded machine, or load reads as a fault.
GENERATION_DEADLINE_SECONDS = 10
GATEWAY_HEADER_TIMEOUT_SECONDS = 2
GATEWAY_MAX_HEADER_BYTES = 16384
CHAOS_SETTINGS = {
    "GENERATION_DEADLINE_SECONDS": str(GENERATION_DEADLINE_SECONDS),
    # Abandoned after the longest call (deadline or provider timeout) plus the margin.
    "MISTRAL_TIMEOUT_SECONDS": str(GENERATION_DEADLINE_SECONDS),
    "GENERATION_ABANDON_MARGIN_SECONDS": "1",
    "GENERATION_SWEEP_SECONDS": "0.5",
    "GENERATION_OFFLINE_TOKEN_DELAY_MS": "15",
    "STORIES_WRITE_LEASE_SECONDS": "3",
    "STORIES_SWEEP_INTERVAL_SECONDS": "0.5",
    "OUTBOX_RETRY_BASE_SECONDS": "0.2",
    "OUTBOX_RETRY_MAX_SECONDS": "1",
    "CONSUMER_RETRY_BASE_SECONDS": "0.5",
    "CONSUMER_RETRY_MAX_SECONDS": "2",
    "BILLING_RESERVATION_SWEEP_SECONDS": "0.5",
    # Every client here (a login storm's too) comes from 127.0.0.1: throttling
    # per address would lock the real users out with the storm. It has tests
    # of its own (services/users); per account it stays on.
    "USERS_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
    "HEALTH_CHECK_INTERVAL_SECONDS": "1",
    "FABULA_RESTART_BACKOFF_INITIAL_SECONDS": "0.2",
    "GATEWAY_HEADER_TIMEOUT_SECONDS": str(GATEWAY_HEADER_TIMEOUT_SECONDS),
    "GATEWAY_BODY_TIMEOUT_SECONDS": "5",
    "GATEWAY_MAX_HEADER_BYTES": str(GATEWAY_MAX_HEADER_BYTES),
    # Password hashing, scaled to a small CI machine shared with the storm's
    # own clients: cheap hashes (about 15 ms idle instead of 150), two at once
    # and two waiting. A login admitted to the queue is then hashed well within
    # the stack's 3 s call deadline (GRPC_DEADLINE_SECONDS) even with the CPU
    # saturated, as docs/operations.md says to size it; the storm's 48 clients
    # still keep the queue full.
    "USERS_ARGON2_TIME_COST": "1",
    "USERS_ARGON2_MEMORY_COST_KIB": "16384",
    "USERS_ARGON2_PARALLELISM": "1",
    "USERS_PASSWORD_HASH_WORKERS": "2",
    "USERS_PASSWORD_HASH_QUEUE": "2",
    # Enough generations that nobody runs out while the fault plays.
    "BILLING_PLANS_JSON": json.dumps({"free": {"generations_limit": 40, "cost_limit_usd": "10"}}),
}


def start_chaos_stack(
    postgres: PrivatePostgres, nats_server: PrivateNats, log_path: Path, **overrides: str
) -> Stack:
    env = stack_environment(
        POSTGRES_ADMIN_URL=postgres.admin_url,
        NATS_URL=nats_server.url,
        **{**CHAOS_SETTINGS, **overrides},
    )
    return start_stack(env, log_path, timeout=120)


@pytest.fixture(scope="module")
def chaos_stack(private_postgres, session_nats, tmp_path_factory) -> Iterator[Stack]:
    """One stack shared by the scenarios that need no settings of their own;
    each scenario has users of its own and reconciles only them."""
    stack = start_chaos_stack(
        private_postgres, session_nats, tmp_path_factory.mktemp("chaos") / "fabula.log"
    )
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
    problems: list[str] = field(default_factory=list)  # the documents of `error` events met
    slowest_stream: float = 0.0  # seconds, request to the stream's end

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
            response = http.post(
                "/v1/auth/register",
                json={"email": email, "password": password, "full_name": "Chaos Writer"},
            )
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


def _answer(response: httpx.Response) -> str:
    """The status, flagged when a 503 does not say when to retry."""
    if response.status_code == 503 and "retry-after" not in response.headers:
        return "503-without-retry-after"
    return str(response.status_code)


class Workload:
    """Each user in a thread of their own: create a story, then continue it
    (streamed, as the apps do) until told to stop, whatever the answers."""

    def __init__(
        self,
        stack: Stack,
        users: list[User],
        before_each: Callable[[User, httpx.Client], None] | None = None,
    ):
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
                        response = http.post(
                            "/v1/stories", json={"genre": "mystery"}, headers=user.headers
                        )
                        user.note(_answer(response))
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
        began = time.monotonic()
        with http.stream(
            "POST",
            f"/v1/stories/{story_id}/continue",
            json={},
            headers={**user.headers, "Accept": "text/event-stream"},
        ) as response:
            if response.status_code != 200:
                response.read()
                user.note(_answer(response))
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
                elif line.startswith("data:") and event == "error":
                    user.problems.append(line[5:].strip())
            if event not in {"segment", "error"}:
                user.note("stream-cut")
        user.slowest_stream = max(user.slowest_stream, time.monotonic() - began)
        return True


# --- Reconciliation ---------------------------------------------------------------


@dataclass
class Figures:
    served: int
    stored: int  # stories.segments of the user's stories
    recorded: (
        int  # generation.generations completed (informative: a completed call may be discarded)
    )
    charged: int  # billing.accounts.generations_used
    ledger: int  # billing.usage_ledger rows that counted
    limit: int | None
    locks_left: int  # stories still claimed by a writer (lease running or claim not yet resolved)
    reservations_left: int  # reservations still holding a count or a cost
    quota_held: int  # billing.accounts.generations_reserved

    @property
    def settled(self) -> bool:
        return (
            self.stored == self.charged == self.ledger
            and self.locks_left == 0
            and self.reservations_left == 0
            and self.quota_held == 0
        )


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
                "SELECT plan, generations_used, generations_reserved FROM billing.accounts WHERE user_id = $1",
                uid,
            )
            found[user.user_id] = Figures(
                served=user.served,
                stored=await conn.fetchval(
                    "SELECT count(*) FROM stories.segments s JOIN stories.stories t ON t.id = s.story_id"
                    " WHERE t.user_id = $1",
                    uid,
                ),
                recorded=await conn.fetchval(
                    "SELECT count(*) FROM generation.generations WHERE user_id = $1 AND outcome = 'completed'",
                    user.user_id,
                ),
                charged=account["generations_used"] if account else 0,
                ledger=await conn.fetchval(
                    "SELECT count(*) FROM billing.usage_ledger WHERE user_id = $1 AND counted", uid
                ),
                limit=_plan_limit(stack, account["plan"] if account else "free"),
                locks_left=await conn.fetchval(
                    "SELECT count(*) FROM stories.stories t WHERE t.user_id = $1 AND (t.writing_until > now()"
                    " OR EXISTS (SELECT 1 FROM stories.pending_generations p WHERE p.story_id = t.id))",
                    uid,
                ),
                reservations_left=await conn.fetchval(
                    "SELECT count(*) FROM billing.reservations WHERE user_id = $1 AND status = 'reserved'"
                    " AND (count_settled_at IS NULL OR cost_settled_at IS NULL)",
                    uid,
                ),
                quota_held=account["generations_reserved"] if account else 0,
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
    """Waits (bounded, 10 s by default) for the users' figures to settle,
    prints them in one line per scenario, and checks the invariants: per user,
    segments stored = generations charged = ledger rows counted, no plan
    exceeded, no story locked, no reservation or quota held."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request

    def figures(self, stack: Stack, users: list[User]) -> dict[str, Figures]:
        return asyncio.run(_figures(stack, users))

    def settle(self, stack: Stack, users: list[User], timeout: float = 15) -> dict[str, Figures]:
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
        line = (
            f"CHAOS {scenario}: users={len(figures)} served={total('served')} stored={total('stored')} "
            f"recorded={total('recorded')} charged={total('charged')} ledger={total('ledger')} "
            f"over_plan={over} locks_left={total('locks_left')} "
            f"reservations_left={total('reservations_left')} quota_held={total('quota_held')}"
        )
        if extra:
            line += f" {extra}"
        # Shown whatever -r/-s say: capturing is suspended around the write.
        plugins = self.request.config.pluginmanager
        terminal, capture = (
            plugins.getplugin("terminalreporter"),
            plugins.getplugin("capturemanager"),
        )
        with capture.global_and_fixture_disabled():
            if terminal is not None:
                terminal.write_line("")
                terminal.write_line(line)
            else:
                print(line, flush=True)

    def check(
        self,
        stack: Stack,
        users: list[User],
        scenario: str,
        timeout: float = 15,
        extra: Callable[[], str] | None = None,
    ) -> dict[str, Figures]:
        started = time.monotonic()
        figures = self.settle(stack, users, timeout)
        # How long the books took to balance once the users stopped.
        settled_in = f"settled_in={time.monotonic() - started:.1f}s"
        # What the users met, all of them together (statuses, stream endings).
        met: dict[str, int] = {}
        for user in users:
            for outcome, times in user.outcomes.items():
                met[outcome] = met.get(outcome, 0) + times
        answers = "answers=" + json.dumps(dict(sorted(met.items())), separators=(",", ":"))
        slowest = f"slowest_stream={max((u.slowest_stream for u in users), default=0):.1f}s"
        self.report(
            scenario,
            figures,
            " ".join([settled_in, answers, slowest] + ([extra()] if extra else [])),
        )
        per_user = {u.email: (f, u.outcomes) for u, f in zip(users, figures.values(), strict=True)}
        for email, (f, outcomes) in per_user.items():
            assert f.stored >= f.served, f"{email}: served more than stored: {f} {outcomes}"
            assert f.limit is None or f.charged <= f.limit, f"{email}: plan exceeded: {f}"
            assert f.stored == f.charged == f.ledger, (
                f"{email}: stored {f.stored}, charged {f.charged}, ledger {f.ledger}: {f} {outcomes}"
            )
            assert f.locks_left == 0, f"{email}: {f.locks_left} stories still locked: {f}"
            assert f.reservations_left == 0, (
                f"{email}: {f.reservations_left} reservations held: {f}"
            )
            assert f.quota_held == 0, f"{email}: {f.quota_held} generations still reserved: {f}"
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


@pytest.fixture(scope="module")
def chaos():
    """The harness's helpers, for the scenarios (conftest modules are not importable)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        Workload=Workload,
        register=register,
        wait_for=wait_for,
        wait_ready=wait_ready,
        start_stack=start_chaos_stack,
        database_url=_database_url,
    )
