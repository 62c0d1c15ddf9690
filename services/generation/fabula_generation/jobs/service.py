"""Jobs rules: what a valid brief is, what a job costs and may cost, the
running-jobs limit, and the state changes of submit, cancel and retry (each
with its event, in one transaction)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict
from decimal import Decimal

from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula_common.context import is_child_safe
from fabula_common.db import Database, utcnow
from fabula_common.errors import (
    Conflict,
    FabulaError,
    IdempotencyKeyReused,
    InvalidArgument,
    NotFound,
    from_rpc_error,
)

import grpc
from fabula_generation.generations.metering import Meter
from fabula_generation.generations.pricing import PriceTable
from fabula_generation.jobs import repository
from fabula_generation.jobs.domain import (
    ACTIVE,
    DEFAULT_TARGET_WORDS,
    TERMINAL_EVENTS,
    Brief,
    EventType,
    Revision,
    Status,
)
from fabula_generation.jobs.models import Job, JobEvent
from fabula_generation.jobs.pipeline import JobPlan, new_stages, revision_stages, split_sections
from fabula_generation.safety.moderation import Moderator, WordListModerator, require_suitable

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 64
MAX_GENRE_CHARS = 50
MAX_PREMISE_CHARS = 4000
MAX_CHARACTERS = 20
MAX_CHARACTER_CHARS = 100
MAX_SETTING_CHARS = 1000
MAX_TONE_CHARS = 1000
MIN_TARGET_WORDS = 100
MAX_TARGET_WORDS = 60_000
MAX_WORLD_NOTES_CHARS = 10_000
MAX_PARENT_TEXT_CHARS = 500_000
MAX_PARENT_TITLE_CHARS = 300
MAX_INSTRUCTIONS_CHARS = 4000
MAX_IDEMPOTENCY_KEY_CHARS = 255
LOCALES = ("en", "de")
# How often a watcher looks for new events.
WATCH_POLL_SECONDS = 0.25


class TooManyRunningJobs(Conflict):
    reason = "too-many-running-jobs"


def _require_id(field: str, value: str) -> None:
    if not value.strip():
        raise InvalidArgument(f"{field} is required")
    if len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise InvalidArgument(f"{field} must be at most {MAX_ID_LENGTH} characters")


def validate_brief(brief: Brief) -> Brief:
    """The brief with its target length resolved; InvalidArgument naming the field."""
    if brief.production_type not in DEFAULT_TARGET_WORDS:
        raise InvalidArgument(
            "brief.production_type is required: one of " + ", ".join(DEFAULT_TARGET_WORDS)
        )
    limits = (
        ("brief.genre", brief.genre, MAX_GENRE_CHARS),
        ("brief.premise", brief.premise, MAX_PREMISE_CHARS),
        ("brief.setting", brief.setting, MAX_SETTING_CHARS),
        ("brief.tone", brief.tone, MAX_TONE_CHARS),
        ("brief.world_notes", brief.world_notes, MAX_WORLD_NOTES_CHARS),
    )
    for field, value, limit in limits:
        if len(value) > limit:
            raise InvalidArgument(f"{field} must be at most {limit} characters")
        if "\x00" in value:
            raise InvalidArgument(f"{field} must not contain NUL characters")
    if len(brief.characters) > MAX_CHARACTERS:
        raise InvalidArgument(f"brief.characters may list at most {MAX_CHARACTERS} characters")
    if any(len(c) > MAX_CHARACTER_CHARS for c in brief.characters):
        raise InvalidArgument(
            f"each of brief.characters must be at most {MAX_CHARACTER_CHARS} characters"
        )
    target = brief.target_words
    if target and not MIN_TARGET_WORDS <= target <= MAX_TARGET_WORDS:
        raise InvalidArgument(
            f"brief.target_words must be 0 (the usual length) or between {MIN_TARGET_WORDS} "
            f"and {MAX_TARGET_WORDS}"
        )
    locale = brief.locale or "en"
    if locale not in LOCALES:
        raise InvalidArgument("brief.locale must be one of " + ", ".join(LOCALES))
    return Brief(
        **{
            **asdict(brief),
            "characters": tuple(brief.characters),
            "target_words": target or DEFAULT_TARGET_WORDS[brief.production_type],
            "locale": locale,
        }
    )


def validate_revision(revision: Revision) -> None:
    _require_id("revision.parent_narrative_id", revision.parent_narrative_id)
    if not revision.parent_text.strip():
        raise InvalidArgument("revision.parent_text is required")
    if len(revision.parent_text) > MAX_PARENT_TEXT_CHARS:
        raise InvalidArgument(
            f"revision.parent_text must be at most {MAX_PARENT_TEXT_CHARS} characters"
        )
    if len(revision.parent_title) > MAX_PARENT_TITLE_CHARS:
        raise InvalidArgument(
            f"revision.parent_title must be at most {MAX_PARENT_TITLE_CHARS} characters"
        )
    if not revision.instructions.strip():
        raise InvalidArgument("revision.instructions is required")
    if len(revision.instructions) > MAX_INSTRUCTIONS_CHARS:
        raise InvalidArgument(
            f"revision.instructions must be at most {MAX_INSTRUCTIONS_CHARS} characters"
        )


def plan_of(job: Job) -> JobPlan:
    """The pipeline of a stored job."""
    brief_values = dict(job.brief)
    brief_values["characters"] = tuple(brief_values.get("characters", ()))
    brief = Brief(**brief_values)
    revision = None
    if job.revision is not None:
        values = dict(job.revision)
        values["locked_sections"] = tuple(values.get("locked_sections", ()))
        revision = Revision(**values)
    return JobPlan(str(job.id), job.user_id, brief, tuple(job.stages), revision)


def parse_job_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        # Not an id this service gave out: nobody's job.
        raise NotFound("job not found") from None


class JobsService:
    def __init__(
        self,
        db: Database,
        meter: Meter,
        billing: billing_pb2_grpc.BillingServiceStub,
        prices: PriceTable,
        model: str,
        running_limits: Mapping[str, int],
        moderator: Moderator | None = None,
    ) -> None:
        self.db = db
        self.meter = meter
        self.billing = billing
        self.prices = prices
        self.model = model
        self.running_limits = dict(running_limits)
        self.moderator = moderator or WordListModerator()

    def estimate(self, plan: JobPlan, stages: list[str] | tuple[str, ...] | None = None) -> Decimal:
        return sum(
            (plan.stage_estimate(stage, self.prices, self.model) for stage in stages or plan.stages),
            Decimal(0),
        )

    async def running_limit(self, user_id: str) -> int:
        try:
            usage = await self.billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from err
        return self.running_limits.get(usage.plan, self.running_limits.get("free", 1))

    async def submit(
        self,
        user_id: str,
        project_id: str,
        brief: Brief,
        revision: Revision | None,
        idempotency_key: str,
        request_hash: str,
    ) -> Job:
        _require_id("user_id", user_id)
        _require_id("project_id", project_id)
        if len(idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
            raise InvalidArgument(
                f"idempotency_key must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters"
            )
        if revision is not None:
            validate_revision(revision)
            words = len(revision.parent_text.split())
            if not brief.target_words:
                brief = Brief(**{**asdict(brief), "target_words": min(
                    max(words, MIN_TARGET_WORDS), MAX_TARGET_WORDS
                )})
        brief = validate_brief(brief)
        if is_child_safe():
            # Before anything is reserved or queued: a refused brief costs nothing.
            await require_suitable(self.moderator, {
                "premise": brief.premise,
                "characters": "\n".join(brief.characters),
                "setting": brief.setting,
                "tone": brief.tone,
                "world_notes": brief.world_notes,
                "instructions": revision.instructions if revision else "",
            })
        if idempotency_key:
            async with self.db.session_scope() as session:
                earlier = await repository.by_idempotency_key(session, user_id, idempotency_key)
            if earlier is not None:
                return self._repeat(earlier, request_hash)
        job_id = uuid.uuid4()
        if revision is None:
            stages = new_stages(brief.target_words)
        else:
            stages = revision_stages(len(split_sections(revision.parent_text, brief.target_words)))
        plan = JobPlan(str(job_id), user_id, brief, tuple(stages), revision)
        estimate = self.estimate(plan)
        limit = await self.running_limit(user_id)
        reserved = False
        try:
            async with self.db.session_scope() as session:
                # Submits of one user queue here: the count below cannot race.
                await repository.lock_user(session, user_id)
                if idempotency_key:
                    earlier = await repository.by_idempotency_key(
                        session, user_id, idempotency_key
                    )
                    if earlier is not None:
                        return self._repeat(earlier, request_hash)
                running = await repository.count_active(session, user_id)
                if running >= limit:
                    raise TooManyRunningJobs(
                        f"too many running jobs: your plan allows {limit} queued or running "
                        "at once; wait for one to finish or cancel one",
                        metadata={"limit": str(limit)},
                    )
                await self.meter.reserve(
                    user_id, str(job_id), cost_only=True, estimated_cost=estimate
                )
                reserved = True
                job = Job(
                    id=job_id,
                    user_id=user_id,
                    project_id=project_id,
                    status=Status.queued.value,
                    brief={**asdict(brief), "characters": list(brief.characters)},
                    target_words=brief.target_words,
                    parent_narrative_id=revision.parent_narrative_id if revision else None,
                    revision=(
                        {**asdict(revision), "locked_sections": list(revision.locked_sections)}
                        if revision
                        else None
                    ),
                    stages=stages,
                    progress=0.0,
                    retry_count=0,
                    estimated_cost_usd=estimate,
                    estimated_generations=plan.calls(),
                    child_safe=is_child_safe(),
                    actual_cost_usd=Decimal(0),
                    tokens_used=0,
                    reservation_id=str(job_id),
                    cancel_requested=False,
                    idempotency_key=idempotency_key or None,
                    request_hash=request_hash if idempotency_key else None,
                    last_sequence=0,
                    created_at=utcnow(),
                )
                session.add(job)
                await repository.add_event(session, job, EventType.queued.value)
            log.info(
                "job %s queued: %s, %d stages, estimate $%s",
                job_id,
                brief.production_type,
                len(stages),
                estimate,
            )
            return job
        except BaseException:
            if reserved:
                await self.meter.release(user_id, str(job_id))
            raise

    @staticmethod
    def _repeat(job: Job, request_hash: str) -> Job:
        if job.request_hash != request_hash:
            raise IdempotencyKeyReused(
                "idempotency_key was used before with a different request"
            )
        return job

    async def get(self, user_id: str, job_id: str) -> tuple[Job, list[str]]:
        async with self.db.session_scope() as session:
            job = await self._owned(session, user_id, job_id)
            done = await repository.completed_stages(session, job.id)
        return job, list(done)

    @staticmethod
    async def _owned(session, user_id: str, job_id: str, *, for_update: bool = False) -> Job:
        job = await repository.get(session, parse_job_id(job_id), for_update=for_update)
        if job is None or job.user_id != user_id:
            raise NotFound("job not found")
        return job

    async def list(
        self, user_id: str, project_id: str, status: str | None, limit: int, after
    ) -> list[tuple[Job, list[str]]]:
        async with self.db.session_scope() as session:
            jobs = await repository.list_jobs(session, user_id, project_id, status, limit, after)
            return [(job, list(await repository.completed_stages(session, job.id))) for job in jobs]

    async def cancel(self, user_id: str, job_id: str) -> tuple[Job, list[str]]:
        """Queued (or held by a worker that died): cancelled at once. Running:
        asked of its worker, which stops the model call in flight."""
        release = False
        async with self.db.session_scope() as session:
            job = await self._owned(session, user_id, job_id, for_update=True)
            if job.status == Status.completed.value:
                raise Conflict("the job is completed: there is nothing to cancel")
            if job.status in ACTIVE:
                job.cancel_requested = True
                dead = job.lease_until is None or job.lease_until < utcnow()
                if job.status == Status.queued.value or dead:
                    job.status = Status.cancelled.value
                    job.current_stage = None
                    job.completed_at = utcnow()
                    job.worker = None
                    await repository.add_event(session, job, EventType.cancelled.value)
                    release = True
            done = await repository.completed_stages(session, job.id)
        if release:
            await self.meter.release(user_id, job.reservation_id)
        return job, list(done)

    async def retry(self, user_id: str, job_id: str, from_stage: str) -> tuple[Job, list[str]]:
        async with self.db.session_scope() as session:
            job = await self._owned(session, user_id, job_id)
            status = job.status
        if status not in (Status.failed.value, Status.cancelled.value):
            raise Conflict(f"only a failed or cancelled job can be retried; this one is {status}")
        limit = await self.running_limit(user_id)
        reservation_id = str(uuid.uuid4())
        reserved = False
        try:
            async with self.db.session_scope() as session:
                await repository.lock_user(session, user_id)
                job = await self._owned(session, user_id, job_id, for_update=True)
                if job.status not in (Status.failed.value, Status.cancelled.value):
                    raise Conflict("the job was retried meanwhile")
                done = await repository.completed_stages(session, job.id)
                stages = list(job.stages)
                if from_stage:
                    if from_stage not in stages:
                        raise InvalidArgument(
                            "from_stage must be one of the job's stages: " + ", ".join(stages)
                        )
                    start = stages.index(from_stage)
                else:
                    start = next((i for i, s in enumerate(stages) if s not in done), len(stages))
                    start = min(start, len(stages) - 1)
                if await repository.count_active(session, user_id) >= limit:
                    raise TooManyRunningJobs(
                        f"too many running jobs: your plan allows {limit} queued or running at once",
                        metadata={"limit": str(limit)},
                    )
                plan = plan_of(job)
                remaining = self.estimate(plan, stages[start:])
                spent, tokens = await repository.spent(session, job.id)
                await self.meter.reserve(
                    user_id, reservation_id, cost_only=True, estimated_cost=remaining
                )
                reserved = True
                await repository.drop_stages_from(session, job.id, start)
                job.status = Status.queued.value
                job.retry_count += 1
                job.cancel_requested = False
                job.error_message = None
                job.error_reason = None
                job.current_stage = None
                job.completed_at = None
                job.worker = None
                job.lease_until = None
                job.reservation_id = reservation_id
                job.actual_cost_usd = spent
                job.tokens_used = tokens
                # What this run may still spend, on top of what was spent.
                job.estimated_cost_usd = spent + remaining
                job.progress = round(100 * start / len(stages), 1)
                await repository.add_event(session, job, EventType.queued.value)
                done = {name: out for name, out in done.items() if stages.index(name) < start}
            return job, list(done)
        except BaseException:
            if reserved:
                await self.meter.release(user_id, reservation_id)
            raise

    async def watch(
        self, user_id: str, job_id: str, after_sequence: int
    ) -> AsyncIterator[tuple[JobEvent, Job | None, list[str]]]:
        """Events after `after_sequence`, then new ones until a terminal one;
        stage and terminal events come with the job as it is when read."""
        async with self.db.session_scope() as session:
            job = await self._owned(session, user_id, job_id)
        after = max(after_sequence, 0)
        while True:
            async with self.db.session_scope() as session:
                events = await repository.events_after(session, job.id, after)
                snapshot, done = None, []
                if any(e.type != EventType.text.value for e in events):
                    snapshot = await repository.get(session, job.id)
                    done = list(await repository.completed_stages(session, job.id))
            for event in events:
                after = event.sequence
                with_job = event.type not in (EventType.text.value, EventType.progress.value)
                yield event, snapshot if with_job else None, done
                if event.type in TERMINAL_EVENTS:
                    return
            if not events:
                await asyncio.sleep(WATCH_POLL_SECONDS)

    async def lookup(self, ids: list[str]) -> tuple[set[str], set[str]]:
        async with self.db.session_scope() as session:
            return await repository.active_ids(session, ids)


__all__ = ["FabulaError", "JobsService", "TooManyRunningJobs"]
