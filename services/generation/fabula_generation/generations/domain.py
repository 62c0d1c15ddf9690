"""What a generation is about, independent of gRPC and of any provider."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class GenerationKind(StrEnum):
    opening = "opening"
    continuation = "continuation"
    ending = "ending"


class Outcome(StrEnum):
    completed = "completed"
    # The caller went away midway; what was produced is still recorded and billed.
    cancelled = "cancelled"
    failed = "failed"


@dataclass(frozen=True)
class StoryContext:
    genre: str = ""
    title: str = ""
    characters: tuple[str, ...] = ()
    opening_line: str = ""
    # The most recent segments, oldest first.
    previous_segments: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerationRequest:
    user_id: str
    story_id: str
    reservation_id: str
    kind: GenerationKind
    story: StoryContext
    direction: str = ""
    want_title: bool = False


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    # True when the provider reported no usage and it was counted here.
    estimated: bool
