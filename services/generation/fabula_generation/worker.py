"""`python -m fabula_generation.worker`: a job worker process (several may run).

It takes long-form jobs from the queue in generation's database and runs
their pipelines; it also runs an outbox relay, so the events its stages
write (UsageRecorded, JobCompleted) are published even when no generation
service runs, and settles what a previous run of the same worker name left
started. Configuration: the generation service's variables (GENERATION_*,
MISTRAL_*, OPENAI_*, BILLING_ADDR, NATS_*), plus GENERATION_WORKER_NAME.
"""

from __future__ import annotations

import asyncio
import logging

from fabula.billing.v1 import billing_pb2_grpc
from fabula_common.db import Database
from fabula_common.grpc_client import open_channel
from fabula_common.messaging.bus import EventBus, subject_for
from fabula_common.messaging.outbox import OutboxRelay
from fabula_common.processes import run_until_stopped, run_worker_process

from fabula_generation.database import outbox
from fabula_generation.generations.metering import Meter
from fabula_generation.generations.pricing import PriceTable
from fabula_generation.generations.servicer import GenerationRecorder
from fabula_generation.generations.tasks import AbandonedGenerationSweeper
from fabula_generation.jobs.worker import JobWorker
from fabula_generation.providers import create_provider
from fabula_generation.safety.moderation import moderator_for
from fabula_generation.settings import Settings

log = logging.getLogger("fabula_generation.worker")


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Run until `stop` is set; then give back the job in hand and flush events."""
    db = Database(settings)
    bus = EventBus(settings, name="generation-worker")
    provider = create_provider(settings)
    prices = PriceTable.from_settings(settings)
    billing_channel = open_channel(settings.billing_addr, settings.grpc_deadline_seconds)
    meter = Meter(
        billing_pb2_grpc.BillingServiceStub(billing_channel), settings.release_timeout_seconds
    )
    name = settings.resolved_worker_name
    usage_subject = subject_for(settings, "generation", "usage_recorded")
    recorder = GenerationRecorder(
        db,
        prices,
        usage_subject,
        meter,
        owner=name,
        abandon_after_seconds=settings.abandon_after_seconds,
    )
    # In stop order: the job first (its last records), then the records, then
    # the relay's last pass publishes their events.
    workers = [
        JobWorker(
            db,
            provider,
            recorder,
            meter,
            prices,
            subject_for(settings, "generation", "job_completed"),
            name=name,
            lease_seconds=settings.jobs_lease_seconds,
            cancel_poll_seconds=settings.jobs_cancel_poll_seconds,
            claim_poll_seconds=settings.jobs_claim_poll_seconds,
            moderator=moderator_for(provider),
        ),
        recorder,
        AbandonedGenerationSweeper(
            db,
            usage_subject,
            interval_seconds=settings.sweep_seconds,
            abandon_after_seconds=settings.abandon_after_seconds,
            instance=name,
        ),
        OutboxRelay(db, outbox, bus, "generation", settings),
    ]
    log.info("job worker %s started (provider %s, model %s)", name, provider.name, provider.model)
    try:
        await run_until_stopped(workers, stop, settings.shutdown_grace_seconds)
    finally:
        await billing_channel.close()
        await provider.aclose()
        await bus.close()
        await db.dispose()
        log.info("job worker %s stopped", name)


def main() -> None:
    run_worker_process("generation-worker", Settings, run_worker)


if __name__ == "__main__":
    main()
