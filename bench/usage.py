"""P3 usage pipeline: UsageRecorded events from generation's outbox to settled
in billing's ledger, through the real relay, JetStream and billing process.

    .venv/bin/python -m bench --only usage

- burst: BURST events wait in the outbox (each naming a reservation it
  settles), then the relay starts; events/s until the last is in the ledger
  and every reservation is settled.
- steady: STEADY_RATE events/s for STEADY_SECONDS, enqueued in small
  transactions as generation's calls end; lag p50/p99 from each commit to the
  moment the bench sees its ledger row (polled every POLL_SECONDS, so a lag
  is overstated by up to that).
- baseline, alternated with the burst rounds: the least a pipeline of this
  shape costs here: the same events with the same headers published
  pipelined to the same NATS, pulled in batches of the same size, inserted
  into a bare table with one asyncpg statement per batch and acknowledged
  (no outbox, inbox or rules), all in this one process.

Billing runs as its own process (`python -m fabula_billing`, LOG_LEVEL=INFO as
deployed) on a private database and stream; this process plays generation:
it runs the `OutboxRelay` on generation's outbox. The load generator writes
the outbox rows as `enqueue` does (same columns and headers) with one asyncpg
statement per transaction and wakes the relay after each commit as `enqueue`
does, so the relay, not the load generator, is what is measured. CPU seconds
per 1,000 events are given for billing and for the relay (load-independent,
unlike the events/s of a shared machine).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import nats
from fabula.common.v1.money_pb2 import Money
from fabula.generation.v1 import events_pb2, generation_pb2
from fabula_common.messaging.headers import EVENT_TYPE_HEADER, MSG_ID_HEADER, REQUEST_ID_HEADER
from fabula_common.provision import drop_database, provision, service_database_url
from fabula_common.testing import free_port, wait_serving
from fabula_devtools.stack import ADMIN_URL
from fabula_devtools.stack import SHARED_NATS_URL as NATS_URL

RESULTS = Path(__file__).resolve().parent / "results"
BURST = int(os.environ.get("BENCH_USAGE_BURST", 20_000))
ROUNDS = int(os.environ.get("BENCH_USAGE_ROUNDS", 2))  # burst rounds per side, alternated
USERS = 500
STEADY_RATE = 1_000
STEADY_SECONDS = 10.0
STEADY_TICK = 0.01  # one producing transaction per tick
POLL_SECONDS = 0.01
BURST_POLL_SECONDS = 0.05
BATCH = 500  # the consumer's batch, for the baseline too
TARGET_PER_SECOND, TARGET_LAG_P99_MS = 5_000, 1_000
ESTIMATE, COST = Decimal("0.01"), Decimal("0.004")


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _usage(user: uuid.UUID, reservation: uuid.UUID) -> events_pb2.UsageRecorded:
    event = events_pb2.UsageRecorded(
        event_id=str(uuid.uuid4()),
        generation_id=str(reservation),
        user_id=str(user),
        reservation_id=str(reservation),
        purpose=generation_pb2.PURPOSE_STORY_CONTINUATION,
        subject=generation_pb2.SubjectRef(kind="story", id=str(uuid.uuid4())),
        provider="offline",
        model="offline-1",
        prompt_tokens=120,
        completion_tokens=80,
        cost=Money(currency_code="USD", units=0, nanos=int(COST * 10**9)),
        outcome=events_pb2.GENERATION_OUTCOME_COMPLETED,
    )
    event.occurred_at.GetCurrentTime()
    return event


async def _reserve(billing: asyncpg.Connection, users: list[uuid.UUID], count: int) -> list:
    """`count` reservations spread over `users`, held on their accounts as
    ReserveGeneration leaves them: (user, reservation) pairs."""
    pairs = [(users[i % len(users)], uuid.uuid4()) for i in range(count)]
    await billing.executemany(
        "INSERT INTO billing.reservations (id, user_id, status, estimated_cost_usd, expires_at)"
        " VALUES ($1, $2, 'reserved', $3, now() + interval '1 hour')",
        [(reservation, user, ESTIMATE) for user, reservation in pairs],
    )
    await billing.execute(
        "UPDATE billing.accounts a SET generations_reserved = generations_reserved + r.n,"
        " cost_reserved_usd = cost_reserved_usd + r.n * $1::numeric FROM (SELECT user_id, count(*) n"
        " FROM billing.reservations WHERE status = 'reserved' AND cost_settled_at IS NULL"
        " AND id = ANY($2::uuid[]) GROUP BY user_id) r WHERE a.user_id = r.user_id",
        ESTIMATE, [reservation for _, reservation in pairs],
    )
    return pairs


def _headers(event) -> dict[str, str]:
    """What `enqueue` stores as a row's headers."""
    return {MSG_ID_HEADER: event.event_id, EVENT_TYPE_HEADER: event.DESCRIPTOR.full_name,
            REQUEST_ID_HEADER: uuid.uuid4().hex}


async def _enqueue(generation: asyncpg.Connection, subject: str, events: list) -> None:
    """Write `events` to generation's outbox as `enqueue` does, in one transaction."""
    await generation.executemany(
        "INSERT INTO generation.outbox (id, subject, event_type, payload, headers)"
        " VALUES ($1, $2, $3, $4, $5::jsonb)",
        [
            (
                uuid.UUID(event.event_id), subject, event.DESCRIPTOR.full_name,
                event.SerializeToString(),
                json.dumps(_headers(event)),
            )
            for event in events
        ],
    )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _backends_cpu(connection: asyncpg.Connection) -> dict[int, float]:
    """CPU seconds of each Postgres backend serving this database (billing's,
    the relay's, the bench's own)."""
    pids = await connection.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    )
    cpu = {}
    for row in pids:
        try:
            cpu[row["pid"]] = _cpu_seconds(row["pid"])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return cpu


async def _ledger_count(billing: asyncpg.Connection) -> int:
    return await billing.fetchval("SELECT count(*) FROM billing.usage_ledger")


async def _fabula_burst(producer, billing: asyncpg.Connection, pairs: list) -> dict:
    generation, relay_factory, subject, billing_pid = producer
    last_id = await billing.fetchval("SELECT coalesce(max(id), 0) FROM billing.usage_ledger")
    for start in range(0, len(pairs), 1000):
        await _enqueue(generation, subject, [_usage(u, r) for u, r in pairs[start : start + 1000]])
    relay = relay_factory()
    cpu_billing, cpu_relay = _cpu_seconds(billing_pid), time.process_time()
    cpu_postgres = await _backends_cpu(billing)
    began = time.perf_counter()
    relaying = asyncio.create_task(relay.run())
    try:
        # Counted over the new rows only (by index), and not too often: the
        # bench's own queries must not weigh on the database it measures.
        while await billing.fetchval(
            "SELECT count(*) FROM billing.usage_ledger WHERE id > $1", last_id
        ) < len(pairs):
            await asyncio.sleep(BURST_POLL_SECONDS)
        elapsed = time.perf_counter() - began
    finally:
        await relay.stop()
        await relaying
    cpu_billing, cpu_relay = _cpu_seconds(billing_pid) - cpu_billing, time.process_time() - cpu_relay
    cpu_postgres = sum(
        cpu - cpu_postgres.get(pid, 0.0) for pid, cpu in (await _backends_cpu(billing)).items()
    )
    held = await billing.fetchval(
        "SELECT count(*) FROM billing.reservations WHERE id = ANY($1::uuid[])"
        " AND status <> 'settled'", [reservation for _, reservation in pairs],
    )
    return {"events": len(pairs), "seconds": round(elapsed, 2),
            "per_second": round(len(pairs) / elapsed), "unsettled_reservations": held,
            "cpu_s_per_1000": {"billing": round(cpu_billing * 1000 / len(pairs), 3),
                               "relay_and_bench_poll": round(cpu_relay * 1000 / len(pairs), 3),
                               "postgres": round(cpu_postgres * 1000 / len(pairs), 3)}}


async def _baseline_burst(count: int, admin_dsn: str, database: str, run: str) -> dict:
    """Publish `count` events pipelined, pull them in batches of BATCH,
    insert each batch with one statement into a bare table, acknowledge."""
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    stream, subject = f"BENCH_BARE_{run}", f"bench_bare_{run}.usage"
    await js.add_stream(name=stream, subjects=[subject])
    connection = await asyncpg.connect(admin_dsn.rsplit("/", 1)[0] + f"/{database}")
    try:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS bare_ledger (event_id text PRIMARY KEY, user_id uuid,"
            " cost numeric, recorded_at timestamptz DEFAULT now())"
        )
        events = [_usage(uuid.uuid4(), uuid.uuid4()) for _ in range(count)]
        # The headers the relay sends (Nats-Msg-Id makes JetStream deduplicate: it costs).
        outgoing = [(event.SerializeToString(), _headers(event)) for event in events]
        subscription = await js.pull_subscribe(subject, durable=f"bare_{run}", stream=stream)
        began = time.perf_counter()

        async def publish() -> None:
            futures = [
                await js.publish_async(subject, payload, headers=headers)
                for payload, headers in outgoing
            ]
            await asyncio.gather(*futures)

        backend = await connection.fetchval("SELECT pg_backend_pid()")
        publishing = asyncio.create_task(publish())
        cpu, cpu_postgres = time.process_time(), _cpu_seconds(backend)
        stored = 0
        while stored < count:
            try:
                messages = await subscription.fetch(BATCH, timeout=1)
            except nats.errors.TimeoutError:
                continue
            events = [events_pb2.UsageRecorded.FromString(m.data) for m in messages]
            await connection.execute(
                "INSERT INTO bare_ledger (event_id, user_id, cost) SELECT * FROM"
                " unnest($1::text[], $2::uuid[], $3::numeric[]) ON CONFLICT DO NOTHING",
                [e.event_id for e in events], [uuid.UUID(e.user_id) for e in events],
                [COST] * len(events),
            )
            for message in messages:
                await message.ack()
            stored += len(messages)
        elapsed = time.perf_counter() - began
        await publishing
        cpu, cpu_postgres = time.process_time() - cpu, _cpu_seconds(backend) - cpu_postgres
    finally:
        await js.delete_stream(stream)
        await connection.close()
        await nc.close()
    return {"events": count, "seconds": round(elapsed, 2), "per_second": round(count / elapsed),
            "cpu_s_per_1000": {"process": round(cpu * 1000 / count, 3),
                               "postgres": round(cpu_postgres * 1000 / count, 3)}}


async def _steady(producer, billing: asyncpg.Connection, pairs: list) -> dict:
    generation, relay_factory, subject, _ = producer
    committed: dict[str, float] = {}
    lags: list[float] = []
    relay = relay_factory()
    relaying = asyncio.create_task(relay.run())
    last_id = await billing.fetchval("SELECT coalesce(max(id), 0) FROM billing.usage_ledger")
    per_tick = round(STEADY_RATE * STEADY_TICK)
    stop = asyncio.Event()

    async def produce() -> None:
        began = time.perf_counter()
        for tick, start in enumerate(range(0, len(pairs), per_tick)):
            # Paced by the clock: a slow tick is made up by the next ones.
            await asyncio.sleep(max(0.0, began + tick * STEADY_TICK - time.perf_counter()))
            events = [_usage(u, r) for u, r in pairs[start : start + per_tick]]
            # Stamped before the insert: the lag includes the producing transaction.
            now = time.perf_counter()
            committed.update((event.event_id, now) for event in events)
            await _enqueue(generation, subject, events)
            relay.wake()  # as enqueue's commit does
        stop.set()

    async def observe() -> None:
        nonlocal last_id
        while len(lags) < len(pairs):
            rows = await billing.fetch(
                "SELECT id, event_id FROM billing.usage_ledger WHERE id > $1 ORDER BY id", last_id
            )
            now = time.perf_counter()
            for row in rows:
                last_id = row["id"]
                lags.append(now - committed[row["event_id"]])
            await asyncio.sleep(POLL_SECONDS)

    try:
        began = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(produce(), observe()), STEADY_SECONDS * 6)
        except TimeoutError:
            raise AssertionError(
                f"steady: {len(committed)} of {len(pairs)} events committed, {len(lags)} settled"
            ) from None
        produced_in = time.perf_counter() - began
    finally:
        await relay.stop()
        await relaying
    lags.sort()
    pick = lambda q: round(lags[min(len(lags) - 1, int(q * len(lags)))] * 1000, 1)  # noqa: E731
    return {"events": len(pairs), "rate_per_second": STEADY_RATE,
            "seconds": round(produced_in, 2), "lag_p50_ms": pick(0.5), "lag_p99_ms": pick(0.99),
            "lag_max_ms": round(lags[-1] * 1000, 1)}


async def run_async(args) -> dict:
    run = uuid.uuid4().hex[:8]
    database = f"fabula_bench_usage_{run}"
    await provision(ADMIN_URL, database, services=("generation", "billing"))
    billing_url = service_database_url(ADMIN_URL, database, "billing")
    generation_url = service_database_url(ADMIN_URL, database, "generation")
    stream, prefix = f"BENCH_USAGE_{run}", f"bench_usage_{run}"
    port = free_port()
    env = {
        **os.environ,
        "BILLING_DATABASE_URL": billing_url,
        "GENERATION_DATABASE_URL": generation_url,
        "BILLING_GRPC_PORT": str(port),
        "BILLING_PLANS_JSON": json.dumps({"bench": {"generations_limit": None, "cost_limit_usd": None}}),
        "BILLING_DEFAULT_PLAN": "bench",
        "NATS_URL": NATS_URL,
        "NATS_STREAM": stream,
        "NATS_SUBJECT_PREFIX": prefix,
        "FABULA_ENV": "test",
        "LOG_LEVEL": "INFO",
    }
    os.environ.update({k: env[k] for k in (
        "BILLING_DATABASE_URL", "GENERATION_DATABASE_URL", "BILLING_PLANS_JSON",
        "BILLING_DEFAULT_PLAN", "NATS_URL", "NATS_STREAM", "NATS_SUBJECT_PREFIX")})
    from fabula_common import migrations
    from fabula_common.db import Database
    from fabula_common.messaging.bus import EventBus, subject_for
    from fabula_common.messaging.outbox import OutboxRelay
    from fabula_generation.database import outbox
    from fabula_generation.settings import Settings as GenerationSettings

    await asyncio.to_thread(migrations.upgrade, "generation")
    await asyncio.to_thread(migrations.upgrade, "billing")
    settings = GenerationSettings()
    db = Database(settings)
    bus = EventBus(settings, name="bench-generation")
    subject = subject_for(settings, "generation", "usage_recorded")
    generation = await asyncpg.connect(_dsn(generation_url))
    log_path = Path(tempfile.mkdtemp(prefix="fabula-bench-usage-")) / "billing.log"
    billing_process = subprocess.Popen(
        [sys.executable, "-m", "fabula_billing"], env=env,
        stdout=subprocess.DEVNULL, stderr=log_path.open("w"),
    )
    billing = None
    try:
        await wait_serving(f"127.0.0.1:{port}", timeout=30)
        producer = (
            generation,
            lambda: OutboxRelay(db, outbox, bus, "bench-generation", settings),
            subject,
            billing_process.pid,
        )
        # The bench's own polls (`id > $1`, every 10 ms in the steady phase)
        # walk the primary key: on a ledger without statistics yet they were
        # planned as scans of the whole table, a tenth of a core of the
        # database being measured.
        billing = await asyncpg.connect(
            _dsn(billing_url), server_settings={"enable_seqscan": "off"}
        )
        users = [uuid.uuid4() for _ in range(USERS)]
        await billing.executemany(
            "INSERT INTO billing.accounts (user_id, plan, period_start, period_end)"
            " VALUES ($1, 'bench', date_trunc('month', now()),"
            " date_trunc('month', now()) + interval '1 month')",
            [(user,) for user in users],
        )
        await _fabula_burst(producer, billing, await _reserve(billing, users, 1000))  # warm up
        rounds: dict[str, list[dict]] = {"fabula": [], "baseline": []}
        for _ in range(ROUNDS):
            rounds["baseline"].append(
                await _baseline_burst(BURST, ADMIN_URL, database, f"{run}_{len(rounds['baseline'])}")
            )
            pairs = await _reserve(billing, users, BURST)
            rounds["fabula"].append(await _fabula_burst(producer, billing, pairs))
            print("usage:", rounds["baseline"][-1], rounds["fabula"][-1], file=sys.stderr)
        steady = await _steady(
            producer, billing, await _reserve(billing, users, int(STEADY_RATE * STEADY_SECONDS))
        )
        totals = await billing.fetchrow(
            "SELECT sum(generations_used) used, sum(generations_reserved) reserved,"
            " sum(cost_used_usd) cost, sum(cost_reserved_usd) cost_reserved FROM billing.accounts"
        )
        ledger = await _ledger_count(billing)
    finally:
        billing_process.terminate()
        billing_process.wait(timeout=30)
        if billing is not None:
            await billing.close()
        await generation.close()
        await bus.close()
        await db.dispose()
        await drop_database(ADMIN_URL, database)
        try:
            js = (await nats.connect(NATS_URL)).jetstream()
            await js.delete_stream(stream)
        except Exception:  # noqa: BLE001 - best effort
            pass

    fabula_rate = min(r["per_second"] for r in rounds["fabula"])
    baseline_rate = max(r["per_second"] for r in rounds["baseline"])
    consistent = (
        totals["used"] == ledger and totals["reserved"] == 0 and totals["cost_reserved"] == 0
        and totals["cost"] == COST * ledger
        and all(r["unsettled_reservations"] == 0 for r in rounds["fabula"])
    )
    return {
        "target": f">= {TARGET_PER_SECOND} events/s outbox -> ledger in a burst; lag p99 < "
        f"{TARGET_LAG_P99_MS} ms at {STEADY_RATE}/s; every event settled once",
        "burst_events_per_second": fabula_rate,
        "baseline_events_per_second": baseline_rate,
        "ratio": round(fabula_rate / baseline_rate, 3),
        "rounds": rounds,
        "steady": steady,
        "ledger_rows": ledger,
        "accounts": {"generations_used": int(totals["used"]),
                     "generations_reserved": int(totals["reserved"]),
                     "cost_used_usd": str(totals["cost"]),
                     "cost_reserved_usd": str(totals["cost_reserved"])},
        "consistent": consistent,
        "met": fabula_rate >= TARGET_PER_SECOND and steady["lag_p99_ms"] < TARGET_LAG_P99_MS
        and consistent,
    }


def run(args) -> dict:
    return asyncio.run(run_async(args))


if __name__ == "__main__":
    print(json.dumps(run(None), indent=2))
