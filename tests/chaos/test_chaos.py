"""Faults injected while real users work, each followed by a reconciliation of
every user's stories, generations and ledger (see conftest.py).

Order matters a little: the scenarios share one stack (each with users of its
own), and the harshest faults (Postgres going away) come last.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from fabula_devtools.stack import stop_stack

pytestmark = pytest.mark.chaos


def _gateway_rss_mib(stack) -> float:
    pid = stack.find_children()["gateway"]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _no_server_errors(users) -> None:
    for user in users:
        bad = {k: v for k, v in user.outcomes.items() if k.startswith("5") or k in {"stream-error", "stream-cut"}}
        assert not bad, f"{user.email} met errors with no fault injected: {user.outcomes}"
        assert user.served >= 2, f"{user.email} was barely served: {user.outcomes}"


@pytest.mark.xfail(strict=False, reason="issue 7 item 7: password hashing has no admission control, so a "
                                        "storm of wrong-password logins gets real users' logins a 503")
def test_login_storm_while_others_work(chaos_stack, chaos, reconcile):
    """48 clients hammer login with wrong passwords; real users keep logging
    in and writing."""
    chaos.wait_ready(chaos_stack)
    users = chaos.register(chaos_stack, 3)

    def log_in(user, http: httpx.Client) -> None:
        response = http.post("/v1/auth/login", json={"email": user.email, "password": user.password})
        user.note(f"login-{response.status_code}")
        if response.status_code == 200:
            user.access_token = response.json()["access_token"]

    storm: list[tuple[int, float]] = []
    stop = threading.Event()

    def attacker() -> None:
        with httpx.Client(base_url=chaos_stack.base_url, timeout=30) as http:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status = http.post("/v1/auth/login", json={"email": users[0].email,
                                                               "password": "wrong password guess"}).status_code
                except httpx.HTTPError:
                    status = 0
                storm.append((status, time.monotonic() - started))

    attackers = [threading.Thread(target=attacker, daemon=True) for _ in range(48)]
    with chaos.Workload(chaos_stack, users, before_each=log_in):
        for thread in attackers:
            thread.start()
        time.sleep(8)
        stop.set()
        for thread in attackers:
            thread.join(timeout=40)

    statuses = sorted({s for s, _ in storm})
    slowest = max((e for _, e in storm), default=0)
    reconcile.check(chaos_stack, users, "login-storm",
                    extra=lambda: f"storm_logins={len(storm)} storm_statuses={statuses} storm_slowest={slowest:.1f}s "
                                  f"user_logins={[{k: v for k, v in u.outcomes.items() if k.startswith('login')} for u in users]}")
    assert set(statuses) <= {401, 429, 503}, statuses
    for user in users:
        refused = {k: v for k, v in user.outcomes.items() if k.startswith("login-") and k != "login-200"}
        assert not refused, f"{user.email}'s own logins were refused during the storm: {user.outcomes}"
    _no_server_errors(users)


def test_slow_and_huge_requests_while_users_work(chaos_stack, chaos, reconcile):
    """Slowloris connections dripping header bytes and requests with
    oversized headers, bounded in number and size, while real users write."""
    chaos.wait_ready(chaos_stack)
    users = chaos.register(chaos_stack, 3)
    port = int(chaos_stack.env["GATEWAY_PORT"])
    rss_before = _gateway_rss_mib(chaos_stack)
    stop = threading.Event()
    slow: list[socket.socket] = []
    huge_answers: list[str] = []

    def slowloris() -> None:
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: fabula\r\n")
            slow.append(sock)
        while not stop.wait(1):
            for sock in list(slow):
                try:
                    sock.sendall(b"X-Drip: 1\r\n")
                except OSError:
                    slow.remove(sock)  # the server hung up on it

    def huge_header() -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: fabula\r\nX-Huge: ")
                chunk = b"a" * 65536
                for _ in range(8 * 16):  # 8 MiB
                    sock.sendall(chunk)
                sock.sendall(b"\r\n\r\n")
                huge_answers.append(sock.recv(64).split(b"\r\n", 1)[0].decode(errors="replace") or "closed")
        except OSError as exc:
            huge_answers.append(type(exc).__name__)

    dripper = threading.Thread(target=slowloris, daemon=True)
    with chaos.Workload(chaos_stack, users):
        dripper.start()
        hugs = [threading.Thread(target=huge_header, daemon=True) for _ in range(4)]
        for thread in hugs:
            thread.start()
        time.sleep(7)
        stop.set()
        for thread in hugs:
            thread.join(timeout=20)
    dripper.join(timeout=10)
    still_open = len(slow)
    for sock in slow:
        sock.close()
    rss_after = _gateway_rss_mib(chaos_stack)

    reconcile.check(chaos_stack, users, "slow-and-huge",
                    extra=lambda: f"slow_open_after_7s={still_open}/100 huge_answers={huge_answers} "
                                  f"gateway_rss_mib={rss_before:.0f}->{rss_after:.0f}")
    _no_server_errors(users)


async def _refuse_segments(database_url: str, refuse: bool) -> None:
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        if refuse:
            await conn.execute("""
                CREATE OR REPLACE FUNCTION public.chaos_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
                END $$;
                CREATE TRIGGER chaos_disk_full BEFORE INSERT ON stories.segments
                    FOR EACH ROW EXECUTE FUNCTION public.chaos_disk_full();
            """)
        else:
            await conn.execute("DROP TRIGGER IF EXISTS chaos_disk_full ON stories.segments;"
                               "DROP FUNCTION IF EXISTS public.chaos_disk_full();")
    finally:
        await conn.close()


@pytest.mark.xfail(strict=False, reason="issue 7 item 1: a generation is charged before its segment is stored")
def test_store_failing_after_generation(chaos_stack, chaos, reconcile):
    """Stories' database refuses to store segments (disk full) while
    continuations stream: the model ran, nothing was stored."""
    import asyncio

    chaos.wait_ready(chaos_stack)
    users = chaos.register(chaos_stack, 3)
    database_url = chaos.database_url(chaos_stack)
    with chaos.Workload(chaos_stack, users) as work:
        work.wait_streaming()
        asyncio.run(_refuse_segments(database_url, True))
        try:
            time.sleep(4)
        finally:
            asyncio.run(_refuse_segments(database_url, False))
        served = {u.user_id: u.served for u in users}
        chaos.wait_for(lambda: all(u.served > served[u.user_id] for u in users), 20)
    reconcile.check(chaos_stack, users, "store-fails-after-generation")


_ITEM_3 = ("issue 7 item 3: freeing a story and releasing its reservation are best effort, so after a "
           "crash or outage the story stays locked for its lease and the reservation held for its TTL")


@pytest.mark.parametrize("victim", [
    pytest.param("stories", marks=pytest.mark.xfail(strict=False, reason=_ITEM_3)),
    pytest.param("generation", marks=pytest.mark.xfail(strict=False, reason=_ITEM_3)),
])
def test_process_killed_mid_stream(victim, chaos_stack, chaos, reconcile, kill_and_wait_restart):
    """kill -9 while every user has a continuation streaming; the launcher
    starts it again and the users carry on."""
    chaos.wait_ready(chaos_stack)
    users = chaos.register(chaos_stack, 3)
    with chaos.Workload(chaos_stack, users) as work:
        work.wait_streaming()
        kill_and_wait_restart(chaos_stack, victim)
        chaos.wait_ready(chaos_stack)
        served = {u.user_id: u.served for u in users}
        chaos.wait_for(lambda: all(u.served > served[u.user_id] for u in users), 20)
    reconcile.check(chaos_stack, users, f"{victim}-killed-mid-stream")


@pytest.mark.parametrize("mode", [
    pytest.param("fast", marks=pytest.mark.xfail(strict=False, reason=_ITEM_3)),
    pytest.param("immediate", marks=pytest.mark.xfail(strict=False, reason=_ITEM_3)),
])
def test_postgres_stopped_during_writes(mode, chaos_stack, private_postgres, chaos, reconcile):
    """The database goes away (a clean fast shutdown, or a crash) for a few
    seconds while users write, then comes back."""
    chaos.wait_ready(chaos_stack)
    users = chaos.register(chaos_stack, 3)
    with chaos.Workload(chaos_stack, users) as work:
        work.wait_streaming()
        private_postgres.stop(mode)
        time.sleep(3)
        private_postgres.start()
        served = {u.user_id: u.served for u in users}
        chaos.wait_for(lambda: all(u.served > served[u.user_id] for u in users), 30)
    reconcile.check(chaos_stack, users, f"postgres-stopped-{mode}")


@pytest.mark.xfail(strict=False, reason="issue 7 item 2: the expiry sweep returns quota for calls whose usage "
                                        "is still in the outbox, so a NATS outage lets users exceed their plan")
def test_nats_outage_longer_than_the_reservation_ttl(private_postgres, private_nats, tmp_path, chaos, reconcile):
    """NATS is killed for longer than a reservation lives: usage waits in the
    outbox; nobody may exceed the plan meanwhile, and all of it is counted
    once NATS is back."""
    stack = chaos.start_stack(
        private_postgres, private_nats, tmp_path / "fabula.log",
        # The reservation must outlive the model call's deadline (a settings rule).
        GENERATION_DEADLINE_SECONDS="3", BILLING_RESERVATION_TTL_SECONDS="4",
        GENERATION_OFFLINE_TOKEN_DELAY_MS="0",
        BILLING_PLANS_JSON=json.dumps({"free": {"generations_limit": 5, "cost_limit_usd": "10"}}),
    )
    try:
        users = chaos.register(stack, 3)
        private_nats.kill()
        with chaos.Workload(stack, users):
            time.sleep(8)  # the TTL twice over, and the sweeps
        private_nats.start()  # same JetStream store: the stream survives
        reconcile.check(stack, users, "nats-outage-beyond-ttl", timeout=25)
    finally:
        stop_stack(stack)
