"""What a job is about, independent of gRPC and of the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE = (Status.queued.value, Status.running.value)
TERMINAL = (Status.completed.value, Status.failed.value, Status.cancelled.value)


class EventType(StrEnum):
    queued = "queued"
    stage_started = "stage_started"
    stage_finished = "stage_finished"
    progress = "progress"
    text = "text"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_EVENTS = (EventType.done.value, EventType.failed.value, EventType.cancelled.value)

# The usual length of each production type when the brief names none.
DEFAULT_TARGET_WORDS = {
    "short_story": 3000,
    "novelette": 10_000,
    "novella": 25_000,
    "chapter": 4000,
    "scene": 1200,
}


@dataclass(frozen=True)
class Brief:
    production_type: str
    genre: str = ""
    premise: str = ""
    characters: tuple[str, ...] = ()
    setting: str = ""
    tone: str = ""
    # Resolved: the brief's own, or the production type's usual length.
    target_words: int = 0
    world_notes: str = ""
    locale: str = "en"


@dataclass(frozen=True)
class Revision:
    parent_narrative_id: str
    parent_title: str
    parent_text: str
    instructions: str
    locked_sections: tuple[int, ...] = field(default_factory=tuple)
