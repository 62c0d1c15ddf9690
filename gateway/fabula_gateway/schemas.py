"""The public JSON shapes: request bodies (with their limits) and responses,
plus their conversion from the services' protobuf messages."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from fabula.billing.v1 import billing_pb2
from fabula.stories.v1 import stories_pb2
from fabula.users.v1 import users_pb2


def _without_nul(value: str) -> str:
    # Postgres text cannot hold NUL: refused here, naming the field, rather
    # than failing in a service's database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


NoNul = AfterValidator(_without_nul)

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
FullName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), NoNul]
OpeningLine = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), NoNul
]
Direction = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000), NoNul]


class RequestBody(BaseModel):
    # A misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- auth


class RegisterRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "password": "correct horse battery",
                    "full_name": "Ada",
                }
            ]
        }
    )

    email: EmailStr
    # Passwords are taken byte for byte: no trimming.
    password: str = Field(min_length=8, max_length=128)
    full_name: FullName | None = None


class LoginRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery"}]
        }
    )

    email: EmailStr
    # No minimum beyond non-empty: a wrong password is a 401 like any other,
    # and a future change of the registration rule must not lock anyone out.
    password: str = Field(min_length=1, max_length=128)


class RefreshRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"refresh_token": "rt_9f8e7d6c5b4a"}]}
    )

    refresh_token: str = Field(min_length=1, max_length=512)


class User(BaseModel):
    id: str
    email: str
    full_name: str | None = Field(description="Null when none was given.")

    @classmethod
    def from_proto(cls, user: users_pb2.User) -> User:
        return cls(id=user.id, email=user.email, full_name=user.full_name or None)


class TokenResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
                    "refresh_token": "rt_9f8e7d6c5b4a",
                    "token_type": "bearer",
                    "expires_in": 900,
                    "user": {
                        "id": "6f1c2a8e-3b7d-4c59-9e0a-1d2f3a4b5c6d",
                        "email": "ada@example.com",
                        "full_name": "Ada",
                    },
                }
            ]
        }
    )

    access_token: str = Field(description="Send as `Authorization: Bearer <access_token>`.")
    refresh_token: str = Field(
        description="Single use: POST it to /v1/auth/refresh for a new pair; it then stops working."
    )
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    user: User

    @classmethod
    def from_proto(cls, reply: users_pb2.TokenResponse) -> TokenResponse:
        return cls(
            access_token=reply.access_token,
            refresh_token=reply.refresh_token,
            expires_in=reply.expires_in,
            user=User.from_proto(reply.user),
        )


# ---------------------------------------------------------------- stories


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


SegmentKind = Literal["opening", "continuation", "ending"]
_SEGMENT_KINDS: dict[int, SegmentKind] = {
    stories_pb2.SEGMENT_KIND_OPENING: "opening",
    stories_pb2.SEGMENT_KIND_CONTINUATION: "continuation",
    stories_pb2.SEGMENT_KIND_ENDING: "ending",
}


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

    @classmethod
    def from_proto(cls, segment: stories_pb2.Segment) -> Segment:
        return cls(
            id=segment.id,
            position=segment.position,
            text=segment.text,
            kind=_SEGMENT_KINDS[segment.kind],
            created_at=_datetime(segment.created_at),
            generated_by=GeneratedBy(
                provider=segment.provider,
                model=segment.model,
                is_language_model=segment.is_language_model,
            ),
        )


class StorySummary(BaseModel):
    id: str
    title: str
    genre: str
    characters: list[str]
    opening_line: str | None
    is_complete: bool = Field(description="True once the story has been ended.")
    segment_count: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def fields_from_proto(cls, story: stories_pb2.Story) -> dict:
        return {
            "id": story.id,
            "title": story.title,
            "genre": story.genre,
            "characters": list(story.characters),
            "opening_line": story.opening_line if story.HasField("opening_line") else None,
            "is_complete": story.is_complete,
            "segment_count": story.segment_count,
            "created_at": _datetime(story.created_at),
            "updated_at": _datetime(story.updated_at),
        }

    @classmethod
    def from_proto(cls, story: stories_pb2.Story) -> StorySummary:
        return cls(**cls.fields_from_proto(story))


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

    @classmethod
    def from_proto(cls, story: stories_pb2.Story) -> Story:
        return cls(
            **cls.fields_from_proto(story),
            segments=[Segment.from_proto(segment) for segment in story.segments],
        )


class StoryPage(BaseModel):
    items: list[StorySummary] = Field(description="Newest first; without segments.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )

    @classmethod
    def from_proto(cls, page: stories_pb2.ListStoriesResponse) -> StoryPage:
        return cls(
            items=[StorySummary.from_proto(story) for story in page.items],
            next_cursor=page.next_cursor or None,
        )


# ---------------------------------------------------------------- usage


class Usage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "plan": "free",
                    "period_start": "2025-01-01T00:00:00Z",
                    "period_end": "2025-02-01T00:00:00Z",
                    "generations_used": 12,
                    "generations_limit": 50,
                    "cost_used_usd": "0.0240",
                    "cost_limit_usd": "1.00",
                }
            ]
        }
    )

    plan: str
    period_start: dt.datetime
    period_end: dt.datetime
    generations_used: int
    generations_limit: int | None = Field(description="Null when the plan is unlimited.")
    cost_used_usd: str = Field(description="US dollars as a decimal string.")
    cost_limit_usd: str | None = Field(
        description="US dollars as a decimal string; null when the plan is unlimited."
    )

    @classmethod
    def from_proto(cls, usage: billing_pb2.UsageSummary) -> Usage:
        return cls(
            plan=usage.plan,
            period_start=_datetime(usage.period_start),
            period_end=_datetime(usage.period_end),
            generations_used=usage.generations_used,
            generations_limit=(
                usage.generations_limit if usage.HasField("generations_limit") else None
            ),
            cost_used_usd=usage.cost_used_usd,
            cost_limit_usd=usage.cost_limit_usd if usage.HasField("cost_limit_usd") else None,
        )


# ---------------------------------------------------------------- health


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "services": {
                        "users": "serving",
                        "stories": "serving",
                        "generation": "serving",
                        "billing": "serving",
                    },
                }
            ]
        }
    )

    status: Literal["ready"] = "ready"
    services: dict[str, str] = Field(
        description="Health of each backend: serving, not_serving, unknown or unreachable."
    )


def _datetime(timestamp: Timestamp) -> dt.datetime:
    return timestamp.ToDatetime(tzinfo=dt.UTC)
