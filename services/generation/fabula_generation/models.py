"""Every table of the `generation` schema, the shared ones and each domain's, in one
metadata: Alembic and the migration test read it from here. A new domain adds
its models' import below."""

from __future__ import annotations

from fabula_generation.database import Base, outbox, processed_events
from fabula_generation.generations.models import Generation
from fabula_generation.jobs.models import Job, JobEvent, JobStage
from fabula_generation.suggestions.models import SuggestionRateWindow

__all__ = [
    "Base",
    "Generation",
    "Job",
    "JobEvent",
    "JobStage",
    "SuggestionRateWindow",
    "outbox",
    "processed_events",
]
