"""Stories and segments: request bodies (with their limits) and responses."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fabula_gateway.schemas import NoNul, RequestBody

# Text fields are trimmed before their limits apply, so "   " is empty.
Genre = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50), NoNul
]
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul
]
CharacterName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
]
OpeningLine = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), NoNul
]
Direction = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000), NoNul]


class CreateStoryRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "genre": "mystery",
                    "title": "The Lighthouse Keeper",
                    "characters": ["Mara", "the keeper"],
                    "opening_line": "The lamp had been dark for three nights.",
                }
            ]
        }
    )

    genre: Genre
    title: Title | None = Field(None, description="Generated when omitted.")
    characters: list[CharacterName] = Field(default_factory=list, max_length=20)
    opening_line: OpeningLine | None = None


class DirectionRequest(RequestBody):
    """Optional guidance for the next segment; the body itself may be omitted."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"direction": "A storm cuts the island off."}]}
    )

    direction: Direction | None = Field(None, description="What should happen next.")


class ContinueRequest(DirectionRequest):
    """Optional guidance, and where to continue; the body itself may be omitted."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"direction": "A storm cuts the island off."},
                {"after_segment_id": "9c8b7a6f-5e4d-4c3b-a2f1-0e9d8c7b6a5f"},
            ]
        }
    )

    after_segment_id: uuid.UUID | None = Field(
        None,
        description="Continue after this segment instead of the story's last one: when it "
        "is an earlier segment, this starts a branch, which the story then follows.",
    )


SegmentText = Annotated[str, StringConstraints(min_length=1, max_length=20_000), NoNul]


class EditSegmentRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "By morning the ferry had stopped running."}]}
    )

    text: SegmentText = Field(
        description="The segment's new text, kept as given; its current text is kept as a "
        "revision."
    )


SegmentKind = Literal["opening", "continuation", "ending"]


class GeneratedBy(BaseModel):
    """Who wrote a segment's text."""

    provider: str = Field(description="The model provider; `offline` is the built-in generator.")
    model: str
    is_language_model: bool = Field(
        description="False for the built-in offline generator, which assembles text from "
        "templates and is not a language model."
    )


class Segment(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b7e6f5a-4d3c-4b2a-9f8e-7d6c5b4a3f2e",
                    "position": 2,
                    "text": "By morning the ferry had stopped running.",
                    "kind": "continuation",
                    "created_at": "2025-01-01T12:00:05Z",
                    "generated_by": {
                        "provider": "offline",
                        "model": "offline-v1",
                        "is_language_model": False,
                    },
                }
            ]
        }
    )

    id: str
    position: int = Field(description="1 for the opening, then 2, 3, ... in story order.")
    text: str
    kind: SegmentKind
    created_at: dt.datetime
    generated_by: GeneratedBy
    parent_id: str | None = Field(
        None, description="The segment it follows; null for an opening."
    )
    alternative_count: int = Field(
        1, description="How many versions its position has (it and its alternatives)."
    )
    alternative_number: int = Field(
        1, description="Which of those versions it is, from 1, oldest first."
    )
    edited: bool = Field(
        False,
        description="True while its text is not the one the model wrote (or the import "
        "brought): edited by hand, or restored from an edit.",
    )
    word_count: int = 0


class SearchHit(BaseModel):
    """Why a story matched a search (`q`)."""

    rank: float = Field(
        description="Higher is a better match; a word in the title, genre or characters "
        "weighs ten times the same word in the story's text."
    )
    snippet: str = Field(
        description="A piece of the matching text, the matched words between « and »."
    )
    segment_id: str | None = Field(
        description="The segment the snippet is from; null when from the title, genre or "
        "characters."
    )


class StorySummary(BaseModel):
    """A story without its segments: a list item, or GET /v1/stories/{id}?view=basic."""

    id: str
    title: str
    genre: str
    characters: list[str]
    opening_line: str | None
    is_complete: bool = Field(description="True once the story has been ended.")
    segment_count: int = Field(
        description="How many segments the story has; they are at positions 1 to segment_count."
    )
    created_at: dt.datetime
    updated_at: dt.datetime
    memory: str = Field("", description="Always shown to the model; empty when none.")
    authors_note: str = Field(
        "", description="Shown near the end of the model's context; empty when none."
    )
    is_favorite: bool = False
    search: SearchHit | None = Field(None, description="Set in search results (`q`) only.")
    head_segment_id: str | None = Field(
        None, description="The last segment of the path the story follows."
    )


class Story(StorySummary):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6a1f0c2e-9d8b-4e7a-8c6d-5b4a3f2e1d0c",
                    "title": "The Lighthouse Keeper",
                    "genre": "mystery",
                    "characters": ["Mara", "the keeper"],
                    "opening_line": "The lamp had been dark for three nights.",
                    "is_complete": False,
                    "segment_count": 1,
                    "segments": [
                        {
                            "id": "9c8b7a6f-5e4d-4c3b-a2f1-0e9d8c7b6a5f",
                            "position": 1,
                            "text": "The lamp had been dark for three nights.",
                            "kind": "opening",
                            "created_at": "2025-01-01T12:00:00Z",
                            "generated_by": {
                                "provider": "offline",
                                "model": "offline-v1",
                                "is_language_model": False,
                            },
                        }
                    ],
                    "created_at": "2025-01-01T12:00:00Z",
                    "updated_at": "2025-01-01T12:00:00Z",
                }
            ]
        }
    )

    segments: list[Segment] = Field(description="Oldest first.")


class StoryPage(BaseModel):
    items: list[StorySummary] = Field(
        description="Newest first (best match first with `q`); without segments."
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


StoryView = Literal["full", "basic"]


class SegmentPage(BaseModel):
    items: list[Segment] = Field(description="In story order, with their texts.")
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null on the last page."
    )


class Alternatives(BaseModel):
    items: list[Segment] = Field(
        description="The versions of a position (the segment and its alternatives), oldest "
        "first."
    )
    selected_id: str | None = Field(
        description="The version the story follows; null when it follows another branch "
        "above this position."
    )


RevisionSource = Literal["generated", "edited", "restored", "imported"]


class SegmentRevision(BaseModel):
    id: str
    segment_id: str
    number: int = Field(description="1, 2, 3, ... per segment, in the order texts were replaced.")
    text: str
    source: RevisionSource = Field(description="How this text came to be the segment's.")
    created_at: dt.datetime = Field(description="When it stopped being the segment's text.")


class Revisions(BaseModel):
    items: list[SegmentRevision] = Field(description="Newest first.")


class Branch(BaseModel):
    id: str = Field(description="The id of the segment the branch ends at (a leaf).")
    length: int = Field(description="Its number of segments.")
    fork_position: int = Field(
        description="The position after which it parts from the followed path (0: at the "
        "opening; its length when it is the followed path)."
    )
    preview: str = Field(description="The beginning of its last segment's text.")
    is_current: bool = Field(description="True for the branch the story follows.")
    is_complete: bool = Field(description="True when it ends with an ending.")
    created_at: dt.datetime


class Branches(BaseModel):
    items: list[Branch] = Field(description="Newest first.")
