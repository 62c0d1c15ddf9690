"""Projects, jobs and narratives: request bodies (with their limits) and responses."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fabula_gateway.schemas import NoNul, RequestBody
from fabula_gateway.stories.schemas import CharacterName

ProductionType = Literal["short_story", "novelette", "novella", "chapter", "scene"]
JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
JobEventType = Literal[
    "queued", "stage_started", "stage_finished", "progress", "text", "done", "failed", "cancelled"
]


def _text(max_length: int, *, min_length: int = 0):
    # Trimmed before the limits apply, so "   " is empty.
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        NoNul,
    ]


ProjectName = _text(200, min_length=1)
Description = _text(4_000)
Genre = _text(50)
WorldNotes = _text(10_000)
Premise = _text(4_000, min_length=1)
Setting = _text(2_000)
Tone = _text(200)
Instructions = _text(4_000, min_length=1)


# --- Projects ------------------------------------------------------------------


class ProjectCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Harbour tales",
                    "description": "Stories of one harbour town.",
                    "default_genre": "mystery",
                    "default_production_type": "short_story",
                    "world_notes": "The ferry runs at dawn only; the lighthouse is dark.",
                }
            ]
        }
    )

    name: ProjectName
    description: Description = ""
    default_genre: Genre = Field("", description="Used when a brief names no genre.")
    default_production_type: ProductionType | None = Field(
        None, description="Used when a brief names no production type."
    )
    world_notes: WorldNotes = Field(
        "", description="Shown to the model in every job of the project."
    )


class ProjectUpdate(RequestBody):
    """Changes the fields sent; the others stay. null clears an optional field."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Island tales"}]})

    name: ProjectName | None = None
    description: Description | None = None
    default_genre: Genre | None = None
    default_production_type: ProductionType | None = None
    world_notes: WorldNotes | None = None


class Project(BaseModel):
    id: str
    name: str
    description: str
    default_genre: str
    default_production_type: ProductionType | None
    world_notes: str
    narrative_count: int = Field(description="Narratives (every version) in the project.")
    total_word_count: int
    total_cost_usd: str = Field(
        description="What the project's narratives cost to write, in US dollars (a "
        "decimal string)."
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class ProjectPage(BaseModel):
    items: list[Project] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


# --- Jobs ----------------------------------------------------------------------


class JobCreate(RequestBody):
    """A production brief. Omitted fields take the project's defaults
    (production type, genre; its world notes are always shown to the model)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "production_type": "short_story",
                    "genre": "mystery",
                    "premise": "A ferry arrives at dawn with nobody aboard.",
                    "characters": ["Mara", "Tobias"],
                    "setting": "A harbour town on a northern island.",
                    "tone": "quiet, uneasy",
                    "target_words": 3000,
                }
            ]
        }
    )

    production_type: ProductionType | None = Field(
        None, description="The project's default when omitted."
    )
    genre: Genre | None = Field(None, description="The project's default when omitted.")
    premise: Premise
    characters: list[CharacterName] = Field(default_factory=list, max_length=20)
    setting: Setting = ""
    tone: Tone = ""
    target_words: int | None = Field(
        None,
        ge=1,
        le=200_000,
        description="Omitted: the production type's usual length (short_story 3,000, "
        "novelette 10,000, novella 25,000, chapter 4,000, scene 1,200).",
    )


class RetryRequest(RequestBody):
    """The body may be omitted: the job continues from its first unfinished stage."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"from_stage": "draft-2"}]})

    from_stage: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None,
        description="A stage of the job's pipeline (see `stages`) to restart from; the "
        "stages before it keep their output and are not paid again.",
    )


class ReviseRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"instructions": "Make the ending less abrupt.", "locked_sections": [0]}
            ]
        }
    )

    instructions: Instructions = Field(description="What should change.")
    locked_sections: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=list,
        max_length=200,
        description="Sections (0-based, in the narrative's text split at its `## ` "
        "headings) to keep verbatim.",
    )


class Job(BaseModel):
    id: str
    project_id: str
    status: JobStatus
    production_type: ProductionType | None
    genre: str
    premise: str
    characters: list[str]
    setting: str
    tone: str
    target_words: int | None = Field(description="null: the production type's usual length.")
    parent_narrative_id: str | None = Field(description="Set for a revision job.")
    current_stage: str | None = Field(description="The stage running now (or that failed).")
    completed_stages: list[str]
    stages: list[str] = Field(description="Every stage of the job's pipeline, in order.")
    progress_percentage: float
    tokens_used: int
    estimated_cost_usd: str = Field(description="Reserved from the plan at submission.")
    estimated_generations: int = Field(description="Model calls planned.")
    actual_cost_usd: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    duration_seconds: float
    error_message: str | None
    retry_count: int
    can_resume: bool = Field(description="A failed or cancelled job that retry can continue.")


class JobPage(BaseModel):
    items: list[Job] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class JobEvent(BaseModel):
    """The data of one Server-Sent Event of /v1/jobs/{job_id}/events."""

    sequence: int = Field(description="Also the SSE `id`: send it back as Last-Event-ID.")
    type: JobEventType
    stage: str | None
    progress_percentage: float
    text: str | None = Field(description="On `text` events: the text written since the last.")
    job: Job | None = Field(description="On stage and terminal events: the job as it is then.")
    occurred_at: dt.datetime


# --- Narratives ------------------------------------------------------------------


class NarrativeSummary(BaseModel):
    id: str
    project_id: str
    job_id: str = Field(description="The job that wrote it.")
    parent_narrative_id: str | None = Field(description="null for version 1.")
    root_narrative_id: str = Field(description="Version 1's id, shared by every version.")
    version: int
    title: str
    production_type: ProductionType
    genre: str
    word_count: int
    quality_metrics: dict[str, float]
    overall_quality_score: float
    cost_usd: str
    tokens_used: int
    view_count: int
    download_count: int
    export_formats: list[str] = Field(description="Formats exported so far.")
    created_at: dt.datetime


class Narrative(NarrativeSummary):
    text: str


class NarrativePage(BaseModel):
    items: list[NarrativeSummary] = Field(description="Newest first, every version; no texts.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class NarrativeVersions(BaseModel):
    versions: list[NarrativeSummary] = Field(description="Oldest version first; no texts.")
