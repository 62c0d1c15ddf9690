"""What a generation is about, independent of gRPC and of any provider."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Purpose(StrEnum):
    """What the text is for; each purpose has its prompt (generations.prompts)."""

    story_opening = "story_opening"
    story_continuation = "story_continuation"
    story_ending = "story_ending"
    # Story ideas (fabula_generation.suggestions): its cost is recorded, but it
    # reserves no quota and never counts as a generation of the plan.
    story_suggestions = "story_suggestions"
    # A long-form job's stage (fabula_generation.jobs): metered as cost under
    # the job's one hold, never counted as a generation of the plan.
    job_stage = "job_stage"
    # A council's model calls (fabula_generation.council): each is metered as
    # cost only; the message itself (council_message, no model call) is the
    # one generation of the plan, counted when its owner stores it.
    council_stage_1 = "council_stage_1"
    council_stage_2 = "council_stage_2"
    council_stage_3 = "council_stage_3"
    council_message = "council_message"
    council_clarify = "council_clarify"
    # A bilingual story about a picture (fabula_generation.pictures): one
    # generation of the plan, counted when its owner stores it.
    picture_story = "picture_story"


STORY_PURPOSES = frozenset(
    {Purpose.story_opening, Purpose.story_continuation, Purpose.story_ending}
)


class Outcome(StrEnum):
    completed = "completed"
    # The caller went away midway; what was produced is still recorded and billed.
    cancelled = "cancelled"
    failed = "failed"


# The outcome of a generation whose call is still running (or whose process
# died mid-call, until the sweeper settles it as failed).
STARTED = "started"


class Delivery(StrEnum):
    """When a generation counts against the plan."""

    # The result is the user's once the call completes.
    on_completion = "on_completion"
    # Only when the subject's owner reports it stored (GenerationDelivered).
    confirmed_by_owner = "confirmed_by_owner"


@dataclass(frozen=True)
class Subject:
    """What a generation is about (e.g. kind "story" and its id), for usage logs."""

    kind: str
    id: str


@dataclass(frozen=True)
class StoryInputs:
    genre: str = ""
    title: str = ""
    characters: tuple[str, ...] = ()
    opening_line: str = ""
    # The most recent segments, oldest first.
    previous_segments: tuple[str, ...] = ()
    # What the model must always keep in mind; empty: none.
    memory: str = ""
    # Shown just before the task; empty: none.
    authors_note: str = ""
    # Lore entries the recent story called up, most important first.
    lore: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComposedPrompt:
    """A prompt its domain wrote itself (a job's stage) instead of story inputs:
    the messages a language model gets, its room to answer, and the text the
    built-in offline generator answers with."""

    system: str
    user: str
    max_tokens: int
    offline_text: str


@dataclass(frozen=True)
class GenerationRequest:
    user_id: str
    purpose: Purpose
    subject: Subject
    story: StoryInputs
    direction: str = ""
    want_title: bool = False
    # Set for a purpose whose prompt is not built from `story` (job stages).
    prompt: ComposedPrompt | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    # True when the provider reported no usage and it was counted here.
    estimated: bool
