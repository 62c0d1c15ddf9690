"""The job worker: claims jobs from the Postgres queue (FOR UPDATE SKIP
LOCKED), holds each under a lease its heartbeat renews, and runs the pipeline
stage by stage. A stage's model call goes through the provider layer and is
recorded like any other (a generation row with purpose job_stage, its
UsageRecorded via the outbox); its output, events and the job's progress
commit in one transaction: the checkpoint a resumed job starts after.

A worker that dies leaves its job running under a lease that runs out; the
next claim resumes it from its last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from contextlib import aclosing
from decimal import Decimal

from fabula.generation.v1 import events_pb2, jobs_pb2
from fabula_common.context import child_safe_var, is_child_safe
from fabula_common.db import Database, utcnow
from fabula_common.db_errors import log_background_failure
from fabula_common.errors import FabulaError
from fabula_common.messaging.outbox import enqueue
from fabula_common.money import to_money

from fabula_generation.database import outbox
from fabula_generation.generations.metering import Meter
from fabula_generation.generations.pricing import PriceTable
from fabula_generation.generations.service import GenerationCall, stream_generation
from fabula_generation.generations.servicer import GenerationRecorder
from fabula_generation.jobs import quality, repository
from fabula_generation.jobs.domain import EventType, Status
from fabula_generation.jobs.models import Job
from fabula_generation.jobs.pipeline import MEASURE, JobPlan
from fabula_generation.jobs.service import plan_of
from fabula_generation.providers import GenerationProvider
from fabula_generation.safety.moderation import Moderator, WordListModerator, require_suitable

log = logging.getLogger(__name__)

BUDGET_EXCEEDED = "job-budget-exceeded"
# Text deltas are written as one TEXT event at most this often, or this big.
TEXT_FLUSH_SECONDS = 0.5
TEXT_FLUSH_CHARS = 2048
MAX_ERROR_CHARS = 1000


class LeaseLost(Exception):
    """Another worker holds the job now (this one was taken for dead)."""


class CancelRequested(Exception):
    pass


class StageFailed(Exception):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message, self.reason = message, reason


class JobWorker:
    def __init__(
        self,
        db: Database,
        provider: GenerationProvider,
        recorder: GenerationRecorder,
        meter: Meter,
        prices: PriceTable,
        completed_subject: str,
        *,
        name: str,
        lease_seconds: float = 15.0,
        cancel_poll_seconds: float = 0.25,
        claim_poll_seconds: float = 0.5,
        moderator: Moderator | None = None,
    ) -> None:
        self.db = db
        self.moderator = moderator or WordListModerator()
        self.provider = provider
        self.recorder = recorder
        self.meter = meter
        self.prices = prices
        self.completed_subject = completed_subject
        self.name = name
        self.lease_seconds = lease_seconds
        self.cancel_poll_seconds = cancel_poll_seconds
        self.claim_poll_seconds = claim_poll_seconds
        self._stopping = asyncio.Event()
        self._current: asyncio.Task | None = None

    # The loop ------------------------------------------------------------------

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                job = await self._claim()
            except Exception as exc:  # noqa: BLE001 - the database may be back soon
                log_background_failure(log, "claiming a job", exc)
                job = None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.claim_poll_seconds)
                continue
            self._current = asyncio.current_task()
            try:
                await self.run_job(job)
            except asyncio.CancelledError:
                if not self._stopping.is_set():
                    raise
            except Exception:  # noqa: BLE001 - one job's fault; the lease lets it resume
                log.exception("job %s: the worker failed; its lease lets it resume", job.id)

    async def stop(self) -> None:
        """Stop after giving back the job in hand: its stage in flight is
        abandoned (the call recorded as cancelled) and it is queued again."""
        self._stopping.set()

    async def _claim(self) -> Job | None:
        async with self.db.session_scope() as session:
            job = await repository.claim(session, self.name, self.lease_seconds)
        if job is not None:
            log.info("job %s claimed by %s", job.id, self.name)
        return job

    # One job ---------------------------------------------------------------------

    async def run_job(self, job: Job) -> None:
        # The job's calls run outside the request that queued it: its
        # child-safe mark comes from the row.
        child_safe_var.set(job.child_safe)
        plan = plan_of(job)
        if job.cancel_requested:
            await self._finish(job, Status.cancelled, None, None)
            return
        stop = asyncio.Event()
        state: dict[str, str] = {}
        heartbeat = asyncio.create_task(self._heartbeat(job.id, stop, state))
        try:
            await self._run_stages(job, plan, stop, state)
        except CancelRequested:
            await self._finish(job, Status.cancelled, None, None)
        except StageFailed as failure:
            await self._finish(job, Status.failed, failure.message, failure.reason)
        except LeaseLost:
            log.warning("job %s: lease lost; another worker has it", job.id)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _heartbeat(self, job_id: uuid.UUID, stop: asyncio.Event, state: dict) -> None:
        """Polls for a cancel every cancel_poll_seconds and renews the lease
        every third of it; sets `stop` with why in state["why"]."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.cancel_poll_seconds)
            try:
                async with self.db.session_scope() as session:
                    if time.monotonic() - renewed >= self.lease_seconds / 3:
                        cancel = await repository.renew_lease(
                            session, job_id, self.name, self.lease_seconds
                        )
                        renewed = time.monotonic()
                    else:
                        cancel = await repository.cancel_requested(session, job_id, self.name)
            except Exception:  # noqa: BLE001 - try again; the lease covers a blip
                log.warning("job %s: heartbeat failed", job_id, exc_info=True)
                continue
            if cancel is None:
                state["why"] = "lost"
            elif cancel:
                state["why"] = "cancel"
            elif self._stopping.is_set():
                state["why"] = "stopping"
            if "why" in state:
                stop.set()
                return

    def _interrupt(self, state: dict) -> Exception:
        why = state.get("why")
        if why == "cancel":
            return CancelRequested()
        return LeaseLost()

    async def _run_stages(
        self, job: Job, plan: JobPlan, stop: asyncio.Event, state: dict
    ) -> None:
        async with self.db.session_scope() as session:
            outputs = await repository.completed_stages(session, job.id)
        for position, stage in enumerate(plan.stages):
            if stage in outputs:
                continue
            if stop.is_set():
                await self._requeue_if_stopping(job, state)
                raise self._interrupt(state)
            await self._stage_started(job, stage)
            if stage == MEASURE:
                await self._complete(job, plan, outputs, position)
                return
            locked = plan.locked_output(stage)
            if locked is not None:
                output = locked
            else:
                prompt = plan.prompt_for(stage, outputs)
                assert prompt is not None
                estimate = plan.stage_estimate(stage, self.prices, self.provider.model)
                async with self.db.session_scope() as session:
                    spent, _ = await repository.spent(session, job.id)
                if spent + estimate > job.estimated_cost_usd:
                    raise StageFailed(
                        f"the job's budget of ${job.estimated_cost_usd} would be exceeded by "
                        f"stage {stage} (${spent} spent, up to ${estimate} more)",
                        BUDGET_EXCEEDED,
                    )
                call_task = asyncio.create_task(self._call(job, plan, stage, prompt))
                stopped = asyncio.create_task(stop.wait())
                await asyncio.wait({call_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                if not call_task.done():
                    # Cancelling the task closes the provider's stream; the
                    # call is recorded as cancelled with what it consumed.
                    call_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await call_task
                    await self._requeue_if_stopping(job, state)
                    raise self._interrupt(state)
                try:
                    output = call_task.result()
                except LeaseLost:
                    raise
                except FabulaError as exc:
                    raise StageFailed(f"stage {stage} failed: {exc.message}", exc.reason) from exc
            await self._checkpoint(job, plan, stage, position, output)
            outputs[stage] = output

    async def _requeue_if_stopping(self, job: Job, state: dict) -> None:
        """A worker stopping gives its job back at once (no lease to wait out)."""
        if state.get("why") != "stopping":
            return
        async with self.db.session_scope() as session:
            owned = await repository.own(session, job.id, self.name)
            if owned is not None:
                owned.status = Status.queued.value
                owned.worker = None
                owned.lease_until = None
        log.info("job %s given back: the worker is stopping", job.id)

    async def _call(self, job: Job, plan: JobPlan, stage: str, prompt) -> str:
        call = GenerationCall(
            plan.request_for(stage, prompt),
            self.provider,
            # Metered under the job's one hold: no reservation of its own.
            reservation_id="",
            attributes={
                "job_id": str(job.id),
                "stage": stage,
                "production_type": plan.brief.production_type,
            },
        )
        await self.recorder.start(call)
        # A child's watcher gets no text before the moderation has read it:
        # the stage's text is checked whole, then sent as one event.
        child_safe = is_child_safe()
        pending: list[str] = []
        flushed_at = time.monotonic()
        async with self.recorder.recording(call):
            async with aclosing(stream_generation(call)) as deltas:
                async for delta in deltas:
                    pending.append(delta)
                    if child_safe:
                        continue
                    if (
                        time.monotonic() - flushed_at >= TEXT_FLUSH_SECONDS
                        or sum(map(len, pending)) >= TEXT_FLUSH_CHARS
                    ):
                        await self._text(job, stage, "".join(pending))
                        pending.clear()
                        flushed_at = time.monotonic()
        if child_safe:
            # Paid either way; a refusal fails the job (reason content-blocked).
            await require_suitable(self.moderator, {stage: call.text})
        if pending:
            await self._text(job, stage, "".join(pending))
        return call.text

    # Transactions ------------------------------------------------------------------

    async def _owned(self, session, job: Job) -> Job:
        owned = await repository.own(session, job.id, self.name)
        if owned is None:
            raise LeaseLost()
        return owned

    async def _text(self, job: Job, stage: str, text: str) -> None:
        async with self.db.session_scope() as session:
            owned = await self._owned(session, job)
            await repository.add_event(session, owned, EventType.text.value, stage=stage, text_=text)

    async def _stage_started(self, job: Job, stage: str) -> None:
        async with self.db.session_scope() as session:
            owned = await self._owned(session, job)
            owned.current_stage = stage
            await repository.add_event(session, owned, EventType.stage_started.value, stage=stage)

    async def _checkpoint(
        self, job: Job, plan: JobPlan, stage: str, position: int, output: str
    ) -> None:
        async with self.db.session_scope() as session:
            owned = await self._owned(session, job)
            spent, tokens = await repository.spent(session, job.id)
            done_before = await repository.completed_stages(session, job.id)
            await repository.add_stage(
                session,
                dict(
                    job_id=job.id,
                    name=stage,
                    position=position,
                    output=output,
                    tokens=max(tokens - owned.tokens_used, 0),
                    cost_usd=max(spent - owned.actual_cost_usd, Decimal(0)),
                    completed_at=utcnow(),
                ),
            )
            owned.actual_cost_usd = spent
            owned.tokens_used = tokens
            owned.progress = round(100 * (len(done_before) + 1) / len(plan.stages), 1)
            await repository.add_event(session, owned, EventType.stage_finished.value, stage=stage)
            await repository.add_event(session, owned, EventType.progress.value, stage=stage)

    async def _complete(
        self, job: Job, plan: JobPlan, outputs: dict[str, str], position: int
    ) -> None:
        title, text = plan.narrative(outputs)
        # In a thread: a novella's metrics take a second or two of CPU, which
        # would hold up the lease heartbeat and the cancel check.
        metrics, score = await asyncio.to_thread(
            quality.measure, text, plan.brief.target_words
        )
        async with self.db.session_scope() as session:
            owned = await self._owned(session, job)
            spent, tokens = await repository.spent(session, job.id)
            await repository.add_stage(
                session,
                dict(
                    job_id=job.id,
                    name=MEASURE,
                    position=position,
                    output=json.dumps({"metrics": metrics, "overall_score": score}),
                    tokens=0,
                    cost_usd=Decimal(0),
                    completed_at=utcnow(),
                ),
            )
            now = utcnow()
            owned.status = Status.completed.value
            owned.current_stage = None
            owned.progress = 100.0
            owned.actual_cost_usd = spent
            owned.tokens_used = tokens
            owned.completed_at = now
            owned.lease_until = None
            await repository.add_event(session, owned, EventType.stage_finished.value, stage=MEASURE)
            await repository.add_event(session, owned, EventType.done.value)
            event = events_pb2.JobCompleted(
                event_id=str(uuid.uuid4()),
                job_id=str(job.id),
                user_id=job.user_id,
                project_id=job.project_id,
                parent_narrative_id=job.parent_narrative_id or "",
                title=title,
                production_type=jobs_pb2.ProductionType.Value(
                    "PRODUCTION_TYPE_" + plan.brief.production_type.upper()
                ),
                genre=plan.brief.genre,
                text=text,
                word_count=len(text.split()),
                quality_metrics=metrics,
                overall_quality_score=score,
                cost=to_money(spent),
                tokens_used=tokens,
            )
            event.occurred_at.FromDatetime(now)
            await enqueue(session, outbox, self.completed_subject, event)
        log.info("job %s completed: %d words, $%s", job.id, len(text.split()), spent)
        await self.meter.release(job.user_id, job.reservation_id)

    async def _finish(
        self, job: Job, status: Status, error: str | None, reason: str | None
    ) -> None:
        async with self.db.session_scope() as session:
            owned = await repository.own(session, job.id, self.name)
            if owned is None:
                return
            spent, tokens = await repository.spent(session, job.id)
            owned.status = status.value
            owned.error_message = error[:MAX_ERROR_CHARS] if error else None
            owned.error_reason = reason
            if status is Status.cancelled:
                owned.current_stage = None
            owned.actual_cost_usd = spent
            owned.tokens_used = tokens
            owned.completed_at = utcnow()
            owned.lease_until = None
            kind = EventType.cancelled if status is Status.cancelled else EventType.failed
            await repository.add_event(
                session, owned, kind.value, stage=owned.current_stage, text_=error
            )
        log.info("job %s %s%s", job.id, status.value, f": {error}" if error else "")
        await self.meter.release(job.user_id, job.reservation_id)
