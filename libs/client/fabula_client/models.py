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


# --- accounts: sign-in identities, export, admin --------------------------------


class IdentityProvider(Model):
    name: str
    display_name: str = ""


class IdentityProviderList(Model):
    providers: list[IdentityProvider]


class SignInStart(Model):
    """Send the user to `authorization_url`; the provider sends them back with
    `code` and this `state`, for `identities.complete_sign_in()`."""

    authorization_url: str
    state: str


class Identity(Model):
    id: str
    provider: str
    subject: str
    email: str | None = None
    created_at: dt.datetime


class IdentityList(Model):
    identities: list[Identity]


class AccountExport(Model):
    """Everything the account holds (`?format=json`); the zip form is bytes."""

    format: str
    exported_at: dt.datetime
    user_id: str
    users: dict[str, Any] = {}
    stories: list[dict[str, Any]] = []
    conversations: list[dict[str, Any]] = []
    projects: list[dict[str, Any]] = []
    pictures: dict[str, Any] = {}
    photos: list[dict[str, Any]] = []
    billing: dict[str, Any] = {}


class AdminUser(Model):
    id: str
    email: str
    full_name: str | None = None
    created_at: dt.datetime
    is_active: bool = True
    is_superuser: bool = False
    is_verified: bool = False


AdminUserPage = Page[AdminUser]


class AdminUserDetail(Model):
    user: AdminUser
    usage: Usage


class AuditEntry(Model):
    id: str
    actor_id: str | None = None
    action: str
    target_user_id: str | None = None
    details: dict[str, str] = {}
    created_at: dt.datetime


AuditPage = Page[AuditEntry]


# --- stories: segments, branches, lore, context, sharing, stats ----------------


class SegmentPage(Model):
    """Segments in order; pass `next_after` (a position) back for the next page."""

    items: list[Segment]
    next_after: int | None = None


class Alternatives(Model):
    """The versions of one segment; `selected_id` is the one the story follows."""

    items: list[Segment]
    selected_id: str | None = None


class SegmentRevision(Model):
    id: str
    segment_id: str
    number: int
    text: str
    source: str
    created_at: dt.datetime


class Revisions(Model):
    items: list[SegmentRevision]


class Branch(Model):
    id: str
    length: int
    fork_position: int
    preview: str = ""
    is_current: bool = False
    is_complete: bool = False
    created_at: dt.datetime


class BranchList(Model):
    items: list[Branch]


class LoreEntry(Model):
    """Text put into the model's context when one of its `keys` appears (always if `constant`)."""

    id: str
    story_id: str
    keys: list[str] = []
    secondary_keys: list[str] = []
    secondary_logic: str = "and_any"
    text: str
    priority: int = 0
    constant: bool = False
    enabled: bool = True
    created_at: dt.datetime
    updated_at: dt.datetime


class LoreEntryList(Model):
    items: list[LoreEntry]


class ContextLore(Model):
    entry_id: str
    text: str
    tokens: int
    matched: str = ""


class ContextSegment(Model):
    position: int
    segment_id: str
    text: str
    tokens: int
    truncated: bool = False


class ContextBudget(Model):
    max_tokens: int
    used_tokens: int
    segments_omitted: int = 0
    lore_omitted: list[str] = []


class PromptMessage(Model):
    role: str
    content: str


class StoryContext(Model):
    """What the model would be given for the next segment, and what did not fit."""

    memory: str = ""
    lore: list[ContextLore] = []
    segments: list[ContextSegment] = []
    authors_note: str = ""
    direction: str = ""
    budget: ContextBudget
    prompt: list[PromptMessage] = []


class GenreStats(Model):
    genre: str
    total: int
    completed: int
    words: int


class StoryStats(Model):
    total: int
    completed: int
    favorites: int
    average_segments: float
    total_words: int
    genres: list[GenreStats] = []


class ShareLink(Model):
    token: str
    url: str
    created_at: dt.datetime


class SharedSegment(Model):
    position: int
    kind: str
    text: str


class SharedStory(Model):
    """A shared story as anyone with the link reads it."""

    title: str
    genre: str
    characters: list[str] = []
    is_complete: bool
    segments: list[SharedSegment] = []
    created_at: dt.datetime
    updated_at: dt.datetime
    view_count: int = 0


class StoryIdea(Model):
    title: str
    genre: str
    characters: list[str] = []
    opening_line: str = ""


class StorySuggestions(Model):
    ideas: list[StoryIdea]
    generated_by: GeneratedBy | None = None


# --- narratives (what a project's jobs produce) -------------------------------


class NarrativeSummary(Model):
    id: str
    project_id: str
    job_id: str
    parent_narrative_id: str | None = None
    root_narrative_id: str
    version: int
    title: str
    production_type: str
    genre: str = ""
    word_count: int = 0
    quality_metrics: dict[str, float] = {}
    overall_quality_score: float = 0
    cost_usd: Decimal = Decimal(0)
    tokens_used: int = 0
    view_count: int = 0
    download_count: int = 0
    export_formats: list[str] = []
    created_at: dt.datetime


class Narrative(NarrativeSummary):
    text: str = ""


NarrativePage = Page[NarrativeSummary]


class NarrativeVersions(Model):
    versions: list[NarrativeSummary]


# --- photos -------------------------------------------------------------------


class Rendition(Model):
    """One stored form of a photo (`original`, `thumb_256`, `thumb_1024`);
    `url` is a download link that expires (the photo's `urls_expire_at`)."""

    name: str
    content_type: str
    width: int
    height: int
    size_bytes: int
    url: str | None = None


class Photo(Model):
    id: str
    status: str  # pending, uploaded, processing, completed, failed
    content_type: str
    size_bytes: int
    object_key: str = ""
    failure_reason: str | None = None
    width: int | None = None
    height: int | None = None
    renditions: list[Rendition] = []
    urls_expire_at: dt.datetime | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
    processed_at: dt.datetime | None = None

    @property
    def is_processed(self) -> bool:
        return self.status in {"completed", "failed"}

    def rendition(self, name: str) -> Rendition | None:
        return next((r for r in self.renditions if r.name == name), None)


class Upload(Model):
    """Where a photo's bytes go: POST a multipart form of `fields` and then
    the file as `file` (presigned storage), or PUT the bytes with `headers`."""

    url: str
    method: str
    headers: dict[str, str] = {}
    fields: dict[str, str] = {}
    expires_at: dt.datetime


class PhotoUpload(Model):
    photo: Photo
    upload: Upload


PhotoPage = Page[Photo]


# --- tutorials, drawings and picture stories -----------------------------------


class TutorialStep(Model):
    step_number: int
    instruction: str
    image_url: str = ""


class Tutorial(Model):
    """A drawing tutorial in one language (`lang`); `steps` only when fetched alone."""

    id: str
    category: str
    lang: str
    title: str
    description: str = ""
    thumbnail_url: str = ""
    total_steps: int = 0
    steps: list[TutorialStep] | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


class TutorialList(Model):
    items: list[Tutorial]


class Bilingual(Model):
    en: str
    de: str


class BilingualStep(Model):
    step_number: int
    instruction: Bilingual
    image_url: str = ""


class BilingualTutorial(Model):
    """A tutorial in both languages, as an editor writes it."""

    id: str
    category: str
    title: Bilingual
    description: Bilingual
    thumbnail_url: str = ""
    total_steps: int = 0
    steps: list[BilingualStep] = []
    created_at: dt.datetime
    updated_at: dt.datetime


class DrawingVersion(Model):
    id: str
    photo_id: str
    version: int
    image_url: str
    created_at: dt.datetime


class PictureImage(Model):
    """The picture a story is about: signed URLs, valid until expires_at."""

    url: str
    thumbnail_url: str
    expires_at: dt.datetime


class Drawing(Model):
    id: str
    photo_id: str
    tutorial_id: str | None = None
    image_url: str | None = None
    photo_available: bool = True
    # The newest version's picture; None when there is none or media did not answer.
    image: PictureImage | None = None
    edits: list[DrawingVersion] = []
    picture_story_count: int = 0
    created_at: dt.datetime
    updated_at: dt.datetime


DrawingPage = Page[Drawing]


class Moderation(Model):
    checked: bool = False
    checker: str = ""
    flagged: bool = False
    categories: list[str] = []


class PictureStory(Model):
    """A short story about a drawing, in English and German."""

    id: str
    drawing_id: str
    photo_id: str
    image_url: str = ""
    # None when the photo is gone or media did not answer in time.
    image: PictureImage | None = None
    title: Bilingual
    text: Bilingual
    direction: str = ""
    generation_time_ms: int = 0
    is_favorite: bool = False
    moderation: Moderation | None = None
    generated_by: GeneratedBy | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


PictureStoryPage = Page[PictureStory]


# --- billing ------------------------------------------------------------------


class Checkout(Model):
    """Send the user to `checkout_url` to pay; the plan changes when they have."""

    checkout_url: str
    session_id: str


class Subscription(Model):
    plan: str
    status: str
    current_period_start: dt.datetime | None = None
    current_period_end: dt.datetime | None = None
    cancel_at_period_end: bool = False


class PortalSession(Model):
    url: str


class InvoicePeriod(Model):
    start: dt.datetime | None = None
    end: dt.datetime | None = None


class Invoice(Model):
    id: str
    number: str | None = None
    status: str
    amount_paid: int = Field(description="In the currency's smallest unit (cents).")
    currency: str
    hosted_invoice_url: str | None = None
    period: InvoicePeriod | None = None
    created: dt.datetime


InvoicePage = Page[Invoice]
