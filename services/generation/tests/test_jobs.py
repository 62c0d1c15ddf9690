"""Long-form jobs over real gRPC, Postgres, NATS and the real billing service,
run by real job workers (in this process, or as processes of their own)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import grpc
import nats
import pytest
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.generation.v1 import (
    events_pb2,
    generation_pb2,
    generation_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
)
from fabula_billing.app import create_app as create_billing_app
from fabula_billing.settings import Settings as BillingSettings
from fabula_common.context import CHILD_SAFE_HEADER
from fabula_common.db import Database
from fabula_common.errors import error_reason
from fabula_common.messaging.bus import subject_for
from fabula_common.money import from_money
from fabula_common.testing import free_port, running_app
from fabula_generation.app import create_app
from fabula_generation.generations.models import Generation
from fabula_generation.jobs.models import JobStage
from fabula_generation.settings import ModelPrice, Settings
from fabula_generation.worker import run_worker
from sqlalchemy import select

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


@pytest.fixture(scope="module")
async def billing_addr(test_database, test_stream) -> AsyncIterator[str]:
    async with running_app(create_billing_app(BillingSettings(grpc_port=free_port()))) as address:
        os.environ["BILLING_ADDR"] = address
        yield address
        del os.environ["BILLING_ADDR"]


@pytest.fixture(scope="module")
async def billing(billing_addr: str) -> AsyncIterator[billing_pb2_grpc.BillingServiceStub]:
    async with grpc.aio.insecure_channel(billing_addr) as channel:
        yield billing_pb2_grpc.BillingServiceStub(channel)


@asynccontextmanager
async def serving(**overrides):
    settings = Settings(grpc_port=free_port(), **{"provider": "offline", **overrides})
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield jobs_pb2_grpc.JobsServiceStub(channel), generation_pb2_grpc.GenerationServiceStub(
            channel
        )


@pytest.fixture(scope="module")
async def service(billing_addr):
    async with serving() as stubs:
        yield stubs


@pytest.fixture(scope="module")
def jobs(service) -> jobs_pb2_grpc.JobsServiceStub:
    return service[0]


@pytest.fixture(scope="module")
async def db(test_database):
    database = Database(Settings())
    yield database
    await database.dispose()


@asynccontextmanager
async def worker(**overrides):
    """A job worker in this process, for the block's length."""
    settings = Settings(
        **{
            "provider": "offline",
            "worker_name": f"test-worker-{uuid.uuid4().hex[:8]}",
            "jobs_claim_poll_seconds": 0.1,
            **overrides,
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def brief(production_type=jobs_pb2.PRODUCTION_TYPE_SCENE, **fields) -> jobs_pb2.ProductionBrief:
    return jobs_pb2.ProductionBrief(
        production_type=production_type,
        genre=fields.pop("genre", "fantasy"),
        premise=fields.pop("premise", "A lighthouse keeper finds a ship that sank a century ago."),
        characters=fields.pop("characters", ["Mara, a lighthouse keeper", "Tom"]),
        **fields,
    )


async def submit(jobs, user_id=None, **fields) -> jobs_pb2.Job:
    return await jobs.SubmitJob(
        jobs_pb2.SubmitJobRequest(
            user_id=user_id or str(uuid.uuid4()),
            project_id=fields.pop("project_id", str(uuid.uuid4())),
            brief=fields.pop("brief", brief()),
            **fields,
        )
    )


async def watch_all(jobs, job: jobs_pb2.Job, after: int = 0, timeout: float = 60):
    events = []
    async with asyncio.timeout(timeout):
        async for event in jobs.WatchJob(
            jobs_pb2.WatchJobRequest(user_id=job.user_id, job_id=job.id, after_sequence=after)
        ):
            events.append(event)
    return events


async def wait_for_event(jobs, job, predicate, timeout: float = 30) -> jobs_pb2.JobEvent:
    async with asyncio.timeout(timeout):
        async for event in jobs.WatchJob(
            jobs_pb2.WatchJobRequest(user_id=job.user_id, job_id=job.id)
        ):
            if predicate(event):
                return event
    raise AssertionError("the job ended first")


async def rows_of(db: Database, job_id: str) -> list[Generation]:
    async with db.session_scope() as session:
        return list(
            (
                await session.scalars(
                    select(Generation).where(
                        Generation.subject_kind == "job", Generation.subject_id == job_id
                    )
                )
            ).all()
        )


async def stage_rows(db: Database, job_id: str) -> dict[str, JobStage]:
    async with db.session_scope() as session:
        rows = await session.scalars(select(JobStage).where(JobStage.job_id == uuid.UUID(job_id)))
        return {row.name: row for row in rows}


@asynccontextmanager
async def published(nats_url: str, event: str, message_type):
    received = []
    nc = await nats.connect(nats_url, connect_timeout=2)

    async def receive(msg) -> None:
        received.append(message_type.FromString(msg.data))

    await nc.subscribe(subject_for(Settings(), "generation", event), cb=receive)
    try:
        yield received
    finally:
        await nc.close()


async def test_a_job_runs_to_completion_offline(jobs, db, billing, nats_url):
    job = await submit(jobs, brief=brief(jobs_pb2.PRODUCTION_TYPE_SHORT_STORY))
    assert job.status == jobs_pb2.JOB_STATUS_QUEUED
    assert list(job.stages) == ["outline", "draft-1", "draft-2", "revise", "measure"]
    assert job.estimated_generations == 4
    assert from_money(job.estimated_cost) == Decimal(0)  # offline is free
    async with (
        published(nats_url, "job_completed", events_pb2.JobCompleted) as completed,
        published(nats_url, "usage_recorded", events_pb2.UsageRecorded) as usage,
        worker(),
    ):
        events = await watch_all(jobs, job)
        async with asyncio.timeout(10):
            while not completed or len([u for u in usage if u.attributes["job_id"] == job.id]) < 4:
                await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # nothing published twice

    types = [event.type for event in events]
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert types[0] == jobs_pb2.JOB_EVENT_TYPE_QUEUED
    assert types[-1] == jobs_pb2.JOB_EVENT_TYPE_DONE
    started = [e.stage for e in events if e.type == jobs_pb2.JOB_EVENT_TYPE_STAGE_STARTED]
    finished = [e.stage for e in events if e.type == jobs_pb2.JOB_EVENT_TYPE_STAGE_FINISHED]
    assert started == finished == list(job.stages)
    assert jobs_pb2.JOB_EVENT_TYPE_TEXT in types
    progress = [e.progress_percentage for e in events if e.type == jobs_pb2.JOB_EVENT_TYPE_PROGRESS]
    assert progress == sorted(progress) and progress[-1] < 100
    done = events[-1].job
    assert done.status == jobs_pb2.JOB_STATUS_COMPLETED and done.progress_percentage == 100
    assert list(done.completed_stages) == list(job.stages)
    assert done.tokens_used > 3000 and done.completed_at.seconds and not done.can_resume

    [narrative] = [c for c in completed if c.job_id == job.id]
    assert narrative.title and narrative.text.count("## ") == 2
    assert 2500 <= narrative.word_count <= 4500
    assert narrative.quality_metrics["word_count"] == narrative.word_count
    assert narrative.tokens_used == done.tokens_used

    rows = await rows_of(db, job.id)
    assert Counter(r.attributes["stage"] for r in rows if r.outcome == "completed") == Counter(
        {"outline": 1, "draft-1": 1, "draft-2": 1, "revise": 1}
    )
    assert {r.purpose for r in rows} == {"job_stage"} and {r.reservation_id for r in rows} == {""}
    stage_usage = [u for u in usage if u.attributes["job_id"] == job.id]
    assert {u.purpose for u in stage_usage} == {generation_pb2.PURPOSE_JOB_STAGE}
    assert {u.attributes["production_type"] for u in stage_usage} == {"short_story"}
    assert all(not u.reservation_id for u in stage_usage)
    # Metered as cost only: no generation of the plan counted, nothing held.
    summary = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=job.user_id))
    assert summary.generations_used == 0 and summary.generations_reserved == 0


CHILD = ((CHILD_SAFE_HEADER, "1"),)


async def test_a_child_s_job_is_moderated_before_it_is_queued_and_stage_by_stage(jobs, db):
    user_id = str(uuid.uuid4())
    unsuitable = brief(premise="A knight must kill everyone in the castle.")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await jobs.SubmitJob(
            jobs_pb2.SubmitJobRequest(user_id=user_id, project_id=str(uuid.uuid4()), brief=unsuitable),
            metadata=CHILD,
        )
    assert error_reason(refused.value) == "content-blocked"
    listed = await jobs.ListJobs(jobs_pb2.ListJobsRequest(user_id=user_id))
    assert not listed.items  # nothing queued, nothing reserved

    job = await jobs.SubmitJob(
        jobs_pb2.SubmitJobRequest(user_id=user_id, project_id=str(uuid.uuid4()), brief=brief()),
        metadata=CHILD,
    )
    async with worker():
        events = await watch_all(jobs, job)
    assert events[-1].job.status == jobs_pb2.JOB_STATUS_COMPLETED
    # Each stage's text reaches the watcher once, whole, after its check.
    texts = Counter(e.stage for e in events if e.type == jobs_pb2.JOB_EVENT_TYPE_TEXT)
    assert texts and set(texts.values()) == {1}, texts


async def test_a_brief_beyond_the_plan_is_refused(billing_addr):
    expensive = {"offline": ModelPrice(prompt=Decimal(1000), completion=Decimal(1000))}
    async with serving(prices=expensive) as (jobs, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await submit(jobs, brief=brief(jobs_pb2.PRODUCTION_TYPE_NOVELLA))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(refused.value) == "quota-exceeded"


async def test_invalid_briefs_name_their_field(jobs):
    cases = [
        (brief(production_type=jobs_pb2.PRODUCTION_TYPE_UNSPECIFIED), "production_type"),
        (brief(genre="g" * 51), "brief.genre"),
        (brief(target_words=99), "target_words"),
        (brief(target_words=60_001), "target_words"),
        (brief(characters=["c" * 101]), "characters"),
        (brief(world_notes="w" * 10_001), "world_notes"),
    ]
    for bad, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await submit(jobs, brief=bad)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in refused.value.details()


async def test_the_same_idempotency_key_answers_the_same_job(jobs):
    user, project = str(uuid.uuid4()), str(uuid.uuid4())
    first = await submit(jobs, user, project_id=project, idempotency_key="k-1")
    again = await submit(jobs, user, project_id=project, idempotency_key="k-1")
    assert again.id == first.id
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await submit(jobs, user, project_id=project, idempotency_key="k-1", brief=brief(genre="x"))
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_concurrent_submits_over_the_running_limit_admit_exactly_the_limit(jobs):
    user = str(uuid.uuid4())  # free plan: 1 job at a time
    results = await asyncio.gather(
        *(submit(jobs, user) for _ in range(5)), return_exceptions=True
    )
    accepted = [r for r in results if isinstance(r, jobs_pb2.Job)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(accepted) == 1 and len(refused) == 4
    assert {error_reason(r) for r in refused} == {"too-many-running-jobs"}
    assert {r.code() for r in refused} == {grpc.StatusCode.FAILED_PRECONDITION}


async def test_cancel_mid_stage_stops_the_model_and_bills_what_was_consumed(jobs, db):
    job = await submit(jobs)
    async with worker(offline_token_delay_ms=5):
        await wait_for_event(
            jobs, job, lambda e: e.type == jobs_pb2.JOB_EVENT_TYPE_TEXT and e.stage == "draft-1"
        )
        asked = time.monotonic()
        await jobs.CancelJob(jobs_pb2.JobRef(user_id=job.user_id, job_id=job.id))
        last = await wait_for_event(
            jobs, job, lambda e: e.type == jobs_pb2.JOB_EVENT_TYPE_CANCELLED, timeout=5
        )
        assert time.monotonic() - asked < 2.0
    assert last.job.status == jobs_pb2.JOB_STATUS_CANCELLED and last.job.can_resume
    assert list(last.job.completed_stages) == ["outline"]
    [draft] = [r for r in await rows_of(db, job.id) if r.attributes["stage"] == "draft-1"]
    assert draft.outcome == "cancelled"
    # Only what was written before the cancel: the section is ~1,200 words.
    assert 0 < draft.completion_tokens < 1000

    # Retrying goes on from the unfinished stage; the outline is kept, never paid again.
    outline_before = (await stage_rows(db, job.id))["outline"]
    retried = await jobs.RetryJob(jobs_pb2.RetryJobRequest(user_id=job.user_id, job_id=job.id))
    assert retried.status == jobs_pb2.JOB_STATUS_QUEUED and retried.retry_count == 1
    async with worker():
        events = await watch_all(jobs, job, after=last.sequence)
    assert events[-1].type == jobs_pb2.JOB_EVENT_TYPE_DONE
    assert [e.stage for e in events if e.type == jobs_pb2.JOB_EVENT_TYPE_STAGE_STARTED] == [
        "draft-1",
        "revise",
        "measure",
    ]
    stages = await stage_rows(db, job.id)
    assert stages["outline"].output == outline_before.output
    assert stages["outline"].completed_at == outline_before.completed_at
    completed = Counter(
        r.attributes["stage"] for r in await rows_of(db, job.id) if r.outcome == "completed"
    )
    assert completed == Counter({"outline": 1, "draft-1": 1, "revise": 1})


async def test_retry_from_a_stage_keeps_the_earlier_outputs(jobs, db):
    job = await submit(jobs)
    async with worker(offline_token_delay_ms=5):
        await wait_for_event(
            jobs, job, lambda e: e.type == jobs_pb2.JOB_EVENT_TYPE_TEXT and e.stage == "draft-1"
        )
        await jobs.CancelJob(jobs_pb2.JobRef(user_id=job.user_id, job_id=job.id))
        await wait_for_event(jobs, job, lambda e: e.type == jobs_pb2.JOB_EVENT_TYPE_CANCELLED)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await jobs.RetryJob(
            jobs_pb2.RetryJobRequest(user_id=job.user_id, job_id=job.id, from_stage="draft-9")
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    retried = await jobs.RetryJob(
        jobs_pb2.RetryJobRequest(user_id=job.user_id, job_id=job.id, from_stage="outline")
    )
    assert list(retried.completed_stages) == []
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await jobs.RetryJob(jobs_pb2.RetryJobRequest(user_id=job.user_id, job_id=job.id))
    assert conflict.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_watch_resumes_after_a_sequence_without_losing_events(jobs):
    job = await submit(jobs)
    async with worker():
        everything = await watch_all(jobs, job)
    middle = everything[len(everything) // 2].sequence
    rest = await watch_all(jobs, job, after=middle)
    assert [e.sequence for e in rest] == [e.sequence for e in everything if e.sequence > middle]
    assert [e.text for e in rest] == [e.text for e in everything if e.sequence > middle]


async def test_another_users_job_is_not_found(jobs):
    job = await submit(jobs)
    stranger = str(uuid.uuid4())
    ref = jobs_pb2.JobRef(user_id=stranger, job_id=job.id)
    calls = [
        jobs.GetJob(ref),
        jobs.CancelJob(ref),
        jobs.RetryJob(jobs_pb2.RetryJobRequest(user_id=stranger, job_id=job.id)),
        watch_all(jobs, jobs_pb2.Job(id=job.id, user_id=stranger)),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await call
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await jobs.ListJobs(jobs_pb2.ListJobsRequest(user_id=stranger))
    assert not listed.items
    mine = await jobs.ListJobs(jobs_pb2.ListJobsRequest(user_id=job.user_id))
    assert [j.id for j in mine.items] == [job.id]


async def test_lookup_generations_reports_a_job_started_until_it_ends(service):
    jobs, generation = service
    job = await submit(jobs)

    async def state() -> int:
        answer = await generation.LookupGenerations(
            generation_pb2.LookupGenerationsRequest(ids=[job.id])
        )
        return answer.generations[0].state

    assert await state() == generation_pb2.GENERATION_STATE_STARTED
    cancelled = await jobs.CancelJob(jobs_pb2.JobRef(user_id=job.user_id, job_id=job.id))
    assert cancelled.status == jobs_pb2.JOB_STATUS_CANCELLED  # a queued job cancels at once
    assert await state() == generation_pb2.GENERATION_STATE_FINISHED


def start_worker_process(name: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "GENERATION_PROVIDER": "offline",
        "GENERATION_WORKER_NAME": name,
        "GENERATION_OFFLINE_TOKEN_DELAY_MS": "2",
        "GENERATION_JOBS_LEASE_SECONDS": "1.5",
        "GENERATION_JOBS_CLAIM_POLL_SECONDS": "0.1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fabula_generation.worker"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_a_killed_worker_s_job_is_resumed_by_another_and_no_stage_is_paid_twice(jobs, db):
    job = await submit(jobs, brief=brief(jobs_pb2.PRODUCTION_TYPE_SHORT_STORY))
    first = start_worker_process(f"doomed-{uuid.uuid4().hex[:6]}")
    second = None
    try:
        # Mid-job: the outline is a checkpoint, draft-1 is being written.
        await wait_for_event(
            jobs,
            job,
            lambda e: e.type == jobs_pb2.JOB_EVENT_TYPE_TEXT and e.stage == "draft-1",
            timeout=60,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = start_worker_process(f"heir-{uuid.uuid4().hex[:6]}")
        events = await watch_all(jobs, job, timeout=120)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    assert events[-1].type == jobs_pb2.JOB_EVENT_TYPE_DONE
    assert list(events[-1].job.completed_stages) == list(job.stages)
    rows = await rows_of(db, job.id)
    completed = Counter(r.attributes["stage"] for r in rows if r.outcome == "completed")
    assert completed == Counter({"outline": 1, "draft-1": 1, "draft-2": 1, "revise": 1})
    # The call the kill interrupted is left started (the sweeper settles it).
    assert [r.attributes["stage"] for r in rows if r.outcome == "started"] == ["draft-1"]
