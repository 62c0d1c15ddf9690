"""The API's answers as pydantic models.

Fields the server adds later are kept (extra="allow": reachable as attributes
and in `model_dump()`), so an older client keeps working with a newer server.
Amounts of money are decimal strings on the wire and Decimal here.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    # Validators are built on first use: a `fabula` command starts faster.
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


Item = TypeVar("Item")


class Page(Model, Generic[Item]):
    """One page of a list, newest first; pass `next_cursor` back for the next."""

    items: list[Item]
    next_cursor: str | None = None


# --- accounts -----------------------------------------------------------------


class User(Model):
    id: str
    email: str
    full_name: str | None = None


class Profile(User):
    is_verified: bool = False
    is_superuser: bool = False
    locale: str = ""
    created_at: dt.datetime | None = None
    last_login_at: dt.datetime | None = None


class Tokens(Model):
    """An access token (short-lived) and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    expires_in: int = Field(description="Seconds the access token is valid for, when issued.")
    token_type: str = "bearer"
    user: User | None = None
    # Set by the client when the tokens arrive: when the access token expires.
    expires_at: dt.datetime | None = None

    def with_expiry(self, now: dt.datetime | None = None) -> Tokens:
        now = now or dt.datetime.now(dt.UTC)
        return self.model_copy(update={"expires_at": now + dt.timedelta(seconds=self.expires_in)})


class ApiKey(Model):
    id: str
    name: str
    scopes: list[str]
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None


class CreatedApiKey(ApiKey):
    key: str = Field(description="The secret, shown this once.")


class ApiKeyList(Model):
    items: list[ApiKey]


# --- stories ------------------------------------------------------------------


class GeneratedBy(Model):
    provider: str = ""
    model: str = ""
    is_language_model: bool = False


class Segment(Model):
    id: str
    position: int
    text: str
    kind: str
    created_at: dt.datetime
    generated_by: GeneratedBy | None = None
    parent_id: str | None = None
    alternative_count: int = 1
    alternative_number: int = 1
    edited: bool = False
    word_count: int = 0


class SearchHit(Model):
    rank: float | None = None
    snippet: str | None = None


class StorySummary(Model):
    id: str
    title: str
    genre: str
    characters: list[str] = []
    opening_line: str | None = None
    is_complete: bool
    segment_count: int
    created_at: dt.datetime
    updated_at: dt.datetime
    is_favorite: bool = False
    search: SearchHit | None = None
    head_segment_id: str | None = None


class Story(StorySummary):
    memory: str = ""
    authors_note: str = ""
    segments: list[Segment] = []

    @property
    def text(self) -> str:
        return "\n\n".join(segment.text for segment in self.segments)


StoryPage = Page[StorySummary]


# --- usage --------------------------------------------------------------------


class Usage(Model):
    plan: str
    period_start: dt.datetime
    period_end: dt.datetime
    generations_used: int
    generations_in_progress: int = 0
    generations_limit: int | None = Field(description="None: unlimited.")
    cost_used_usd: Decimal
    cost_limit_usd: Decimal | None = None


class UsageLog(Model):
    id: str
    created_at: dt.datetime
    operation: str
    story_id: str | None = None
    provider: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    counted: bool = True


UsageLogPage = Page[UsageLog]


class UsageBreakdown(Model):
    period_start: dt.datetime
    period_end: dt.datetime
    by_model: list[dict[str, Any]] = []
    by_operation: list[dict[str, Any]] = []
    by_production_type: list[dict[str, Any]] = []
    total: dict[str, Any] = {}


# --- projects and jobs --------------------------------------------------------


class Project(Model):
    id: str
    name: str
    description: str = ""
    default_genre: str = ""
    default_production_type: str | None = None
    created_at: dt.datetime


ProjectPage = Page[Project]

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]


class Job(Model):
    id: str
    project_id: str
    status: str
    production_type: str | None = None
    genre: str = ""
    premise: str = ""
    current_stage: str | None = None
    completed_stages: list[str] = []
    stages: list[str] = []
    progress_percentage: float = 0
    tokens_used: int = 0
    estimated_cost_usd: Decimal = Decimal(0)
    actual_cost_usd: Decimal = Decimal(0)
    created_at: dt.datetime
    completed_at: dt.datetime | None = None
    error_message: str | None = None


JobPage = Page[Job]


class JobEvent(Model):
    """One event of a watched job; `sequence` is also its SSE id."""

    sequence: int
    type: str
    stage: str | None = None
    progress_percentage: float = 0
    text: str | None = None
    job: Job | None = None
    occurred_at: dt.datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.type in {"done", "failed", "cancelled"}


# --- council conversations ----------------------------------------------------


class Message(Model):
    id: str
    role: str
    content: str
    council: dict[str, Any] | None = None
    created_at: dt.datetime


class ClarifyingQuestions(Model):
    """The chairman asks these before the council deliberates; answer with follow_up()."""

    questions: list[str]


class ConversationSummary(Model):
    id: str
    title: str = ""
    starred: bool = False
    message_count: int = 0
    pending_questions: list[str] = []
    created_at: dt.datetime
    updated_at: dt.datetime


class Conversation(ConversationSummary):
    messages: list[Message] = []


ConversationPage = Page[ConversationSummary]


# --- streamed events ----------------------------------------------------------


class TextDelta(Model):
    """Text as the model writes it (a story's `token` event)."""

    text: str


class SegmentWritten(Model):
    """The stored segment: the last event of a story stream."""

    segment: Segment


class StoryWritten(Model):
    """The new story with its opening: the last event of a create stream."""

    story: Story


class CouncilEvent(Model):
    """One stage event of the council: `stage_started`, `delta` (text as it
    is written), `answer`, `review`, `aggregate`, `chairman`, `title`; then
    `message` (the question stored, then the answer) or `questions`."""

    event: str
    data: dict[str, Any]

    @property
    def stage(self) -> str | None:
        return self.data.get("stage")

    @property
    def text(self) -> str:
        return str(self.data.get("text") or "")
