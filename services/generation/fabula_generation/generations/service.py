"""Generation rules: what a valid request is, how a model call is driven and
what is recorded for it. Nothing here commits; the edge owns transactions."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from decimal import Decimal

from fabula.generation.v1 import events_pb2, generation_pb2
from fabula_common.db import utcnow
from fabula_common.errors import AlreadyExists, InvalidArgument, UpstreamError
from fabula_common.messaging.outbox import enqueue
from fabula_common.money import format_usd, to_money
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_generation.database import outbox
from fabula_generation.generations import repository
from fabula_generation.generations.domain import (
    Delivery,
    GenerationRequest,
    Outcome,
    Purpose,
    Usage,
)
from fabula_generation.generations.models import Generation
from fabula_generation.generations.pricing import PriceTable
from fabula_generation.generations.text import TitleSplitter, count_tokens
from fabula_generation.metrics import GENERATION_COST, GENERATION_TOKENS, GENERATIONS
from fabula_generation.providers import GenerationProvider, ReportedUsage

log = logging.getLogger(__name__)

# Bounds on what a caller may send: a prompt built from it must fit a model's context.
MAX_ID_LENGTH = 64
MAX_SUBJECT_KIND_LENGTH = 32
MAX_DIRECTION_CHARS = 4000
MAX_GENRE_CHARS = 100
MAX_TITLE_CHARS = 300
MAX_CHARACTERS = 20
MAX_CHARACTER_CHARS = 300
MAX_OPENING_LINE_CHARS = 2000
MAX_PREVIOUS_SEGMENTS = 200
MAX_CONTEXT_CHARS = 100_000
MAX_MEMORY_CHARS = 10_000
MAX_AUTHORS_NOTE_CHARS = 2_000
MAX_LORE_ENTRIES = 200
MAX_LORE_ENTRY_CHARS = 4_000
MAX_ERROR_CHARS = 1000

_PURPOSES = {
    Purpose.story_opening: generation_pb2.PURPOSE_STORY_OPENING,
    Purpose.story_continuation: generation_pb2.PURPOSE_STORY_CONTINUATION,
    Purpose.story_ending: generation_pb2.PURPOSE_STORY_ENDING,
    Purpose.story_suggestions: generation_pb2.PURPOSE_STORY_SUGGESTIONS,
    Purpose.job_stage: generation_pb2.PURPOSE_JOB_STAGE,
    Purpose.council_stage_1: generation_pb2.PURPOSE_COUNCIL_STAGE_1,
    Purpose.council_stage_2: generation_pb2.PURPOSE_COUNCIL_STAGE_2,
    Purpose.council_stage_3: generation_pb2.PURPOSE_COUNCIL_STAGE_3,
    Purpose.council_message: generation_pb2.PURPOSE_COUNCIL_MESSAGE,
    Purpose.council_clarify: generation_pb2.PURPOSE_COUNCIL_CLARIFY,
    Purpose.picture_story: generation_pb2.PURPOSE_PICTURE_STORY,
}
_DELIVERIES = {
    Delivery.on_completion: generation_pb2.DELIVERY_ON_COMPLETION,
    Delivery.confirmed_by_owner: generation_pb2.DELIVERY_CONFIRMED_BY_OWNER,
}
_OUTCOMES = {
    Outcome.completed: events_pb2.GENERATION_OUTCOME_COMPLETED,
    Outcome.cancelled: events_pb2.GENERATION_OUTCOME_CANCELLED,
    Outcome.failed: events_pb2.GENERATION_OUTCOME_FAILED,
}


def validate_request(request: GenerationRequest) -> None:
    """Raise InvalidArgument naming the first field that is missing or too long."""
    ids = (
        ("user_id", request.user_id, MAX_ID_LENGTH),
        ("subject.kind", request.subject.kind, MAX_SUBJECT_KIND_LENGTH),
        ("subject.id", request.subject.id, MAX_ID_LENGTH),
    )
    for field, value, limit in ids:
        if not value.strip():
            raise InvalidArgument(f"{field} is required")
        if "\x00" in value:
            raise InvalidArgument(f"{field} must not contain NUL characters")
        if len(value) > limit:
            raise InvalidArgument(f"{field} must be at most {limit} characters")
    story = request.story
    limits = (
        ("direction", request.direction, MAX_DIRECTION_CHARS),
        ("story.genre", story.genre, MAX_GENRE_CHARS),
        ("story.title", story.title, MAX_TITLE_CHARS),
        ("story.opening_line", story.opening_line, MAX_OPENING_LINE_CHARS),
        ("story.memory", story.memory, MAX_MEMORY_CHARS),
        ("story.authors_note", story.authors_note, MAX_AUTHORS_NOTE_CHARS),
    )
    for field, value, limit in limits:
        if len(value) > limit:
            raise InvalidArgument(f"{field} must be at most {limit} characters")
    if len(story.characters) > MAX_CHARACTERS:
        raise InvalidArgument(f"story.characters may list at most {MAX_CHARACTERS} characters")
    if any(len(character) > MAX_CHARACTER_CHARS for character in story.characters):
        raise InvalidArgument(
            f"each of story.characters must be at most {MAX_CHARACTER_CHARS} characters"
        )
    if len(story.previous_segments) > MAX_PREVIOUS_SEGMENTS:
        raise InvalidArgument(
            f"story.previous_segments may hold at most {MAX_PREVIOUS_SEGMENTS} segments"
        )
    if len(story.lore) > MAX_LORE_ENTRIES:
        raise InvalidArgument(f"story.lore may hold at most {MAX_LORE_ENTRIES} entries")
    if any(len(entry) > MAX_LORE_ENTRY_CHARS for entry in story.lore):
        raise InvalidArgument(
            f"each of story.lore must be at most {MAX_LORE_ENTRY_CHARS} characters"
        )
    context_size = (
        sum(map(len, story.previous_segments))
        + sum(map(len, story.characters))
        + sum(map(len, story.lore))
        + len(story.memory)
    )
    if context_size > MAX_CONTEXT_CHARS:
        raise InvalidArgument(
            f"the story context must be at most {MAX_CONTEXT_CHARS} characters in all"
        )


class GenerationCall:
    """One model call in progress: what it has produced so far and its usage.

    Raw provider output goes in; the segment text (without the title line)
    comes out as it becomes known.
    """

    def __init__(
        self,
        request: GenerationRequest,
        provider: GenerationProvider,
        *,
        generation_id: uuid.UUID | None = None,
        reservation_id: str | None = None,
        delivery: Delivery = Delivery.on_completion,
        attributes: dict[str, str] | None = None,
    ) -> None:
        self.id = generation_id or uuid.uuid4()
        self.request = request
        # The billing reservation the recorded usage settles: the generation's
        # own id, unless a caller of the previous release reserved already
        # ("" for a call under no reservation of its own: a job's stage).
        self.reservation_id = str(self.id) if reservation_id is None else reservation_id
        # Facts for usage logs (UsageRecorded.attributes).
        self.attributes = attributes
        self.delivery = delivery
        self.provider = provider
        # False until the provider is asked: a call refused before that (quota,
        # billing down) consumed no tokens.
        self.model_called = False
        # True once billing granted the reservation (or the caller made it).
        self.reserved = False
        self._started = time.monotonic()
        self._raw: list[str] = []
        self._segment: list[str] = []
        self._titles = TitleSplitter(expect_title=request.want_title)
        self.reported_usage: ReportedUsage | None = None

    def take(self, raw: str) -> str:
        """Record raw output; return what of it belongs to the segment."""
        self._raw.append(raw)
        visible = self._titles.feed(raw)
        if visible:
            self._segment.append(visible)
        return visible

    def finish(self) -> str:
        """The output is complete; return the segment text still held back."""
        tail = self._titles.finish()
        if tail:
            self._segment.append(tail)
        return tail

    @property
    def text(self) -> str:
        return "".join(self._segment).strip()

    @property
    def title(self) -> str:
        if not self.request.want_title:
            return ""
        # A model that ignored the title instruction still leaves the story a title.
        return self._titles.title or self.request.story.title or "Untitled story"

    @property
    def duration_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    def estimated_prompt_tokens(self) -> int:
        """The prompt's size, counted locally: the usage recorded while it runs."""
        return self.provider.count_prompt_tokens(self.request)

    def usage(self, outcome: Outcome) -> Usage:
        """The provider's own figures when it reported them; otherwise counted
        here from the prompt and what was produced."""
        if not self.model_called:
            return Usage(0, 0, False)
        if self.reported_usage is not None:
            return Usage(
                self.reported_usage.prompt_tokens, self.reported_usage.completion_tokens, False
            )
        produced = "".join(self._raw)
        if outcome is Outcome.failed and not produced:
            # The provider refused or never answered: it processed nothing.
            return Usage(0, 0, False)
        return Usage(
            prompt_tokens=self.provider.count_prompt_tokens(self.request),
            completion_tokens=count_tokens(produced),
            estimated=not self.provider.counts_tokens_exactly,
        )


async def stream_generation(call: GenerationCall) -> AsyncIterator[str]:
    """Drive the provider's stream; yield segment text as it arrives."""
    call.model_called = True
    async with aclosing(call.provider.stream(call.request)) as events:
        async for event in events:
            if isinstance(event, ReportedUsage):
                call.reported_usage = event
                continue
            visible = call.take(event.text)
            if visible:
                yield visible
    tail = call.finish()
    if tail:
        yield tail
    _require_text(call)


async def complete_generation(call: GenerationCall) -> None:
    """Drive one non-streamed provider call."""
    call.model_called = True
    completion = await call.provider.complete(call.request)
    call.take(completion.text)
    call.reported_usage = completion.usage
    call.finish()
    _require_text(call)


def _require_text(call: GenerationCall) -> None:
    """A call that wrote no segment (nothing, or only its title line) failed:
    recorded as completed, billing would count it as a generation."""
    if not call.text:
        raise UpstreamError("the model returned no text")


@dataclass(frozen=True)
class RecordedGeneration:
    id: uuid.UUID
    usage: Usage
    cost_usd: Decimal
    outcome: Outcome
    duration_ms: int


async def start_generation(
    session: AsyncSession, call: GenerationCall, prices: PriceTable, owner: str
) -> None:
    """Write the generation as started by process instance `owner` (while its
    quota is reserved), so a process dying at any later step leaves a
    record that is settled later (by the same instance when it starts again,
    else by the sweeper). Its usage is the prompt's estimate until the call
    ends. AlreadyExists when a generation with this id was started before (the
    caller retried)."""
    request, provider, model = call.request, call.provider.name, call.provider.model
    prompt_tokens = call.estimated_prompt_tokens()
    started = await repository.add_started_generation(
        session,
        dict(
            id=call.id,
            user_id=request.user_id,
            purpose=request.purpose.value,
            subject_kind=request.subject.kind,
            subject_id=request.subject.id,
            reservation_id=call.reservation_id,
            provider=provider,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=0,
            usage_estimated=True,
            cost_usd=prices.cost(model, prompt_tokens, 0),
            duration_ms=0,
            delivery=call.delivery.value,
            owner=owner,
            error=None,
            attributes=getattr(call, "attributes", None),
            created_at=utcnow(),
        ),
    )
    if not started:
        raise AlreadyExists(f"generation {call.id} was requested before")


async def record_generation(
    session: AsyncSession,
    call: GenerationCall,
    outcome: Outcome,
    *,
    error: str | None,
    prices: PriceTable,
    subject: str,
) -> RecordedGeneration | None:
    """Give the started generation its outcome and, in the same transaction,
    enqueue the UsageRecorded event billing settles the reservation with.
    None when the sweeper settled it meanwhile (as abandoned, event sent)."""
    usage = call.usage(outcome)
    duration_ms = call.duration_ms
    cost = prices.cost(call.provider.model, usage.prompt_tokens, usage.completion_tokens)
    row = await repository.finish_generation(
        session,
        call.id,
        dict(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            usage_estimated=usage.estimated,
            cost_usd=cost,
            duration_ms=duration_ms,
            outcome=outcome.value,
            error=error[:MAX_ERROR_CHARS] if error else None,
        ),
    )
    if row is None:
        return None
    await enqueue(session, outbox, subject, usage_recorded(row, utcnow()))
    return RecordedGeneration(
        id=call.id, usage=usage, cost_usd=cost, outcome=outcome, duration_ms=duration_ms
    )


async def abandon_stale_generations(
    session: AsyncSession,
    cutoff: dt.datetime,
    limit: int,
    subject: str,
    *,
    owner: str | None = None,
) -> list[Generation]:
    """Settle generations started before `cutoff` (by process instance
    `owner`, when given) and never finished (their process died mid-call) as
    failed, with the prompt's estimated usage, and enqueue their UsageRecorded
    events; return them."""
    now = utcnow()
    abandoned = await repository.abandon_started_before(
        session,
        cutoff,
        limit,
        "abandoned: the process serving the call stopped before it ended",
        owner=owner,
    )
    for row in abandoned:
        row.duration_ms = min(int((now - row.created_at).total_seconds() * 1000), 2**31 - 1)
        await enqueue(session, outbox, subject, usage_recorded(row, now))
    return abandoned


def usage_recorded(row: Generation, occurred_at: dt.datetime) -> events_pb2.UsageRecorded:
    """The UsageRecorded event of a finished generation."""
    event = events_pb2.UsageRecorded(
        event_id=str(uuid.uuid4()),
        generation_id=str(row.id),
        user_id=row.user_id,
        purpose=_PURPOSES[Purpose(row.purpose)],
        subject=generation_pb2.SubjectRef(kind=row.subject_kind, id=row.subject_id),
        reservation_id=row.reservation_id,
        provider=row.provider,
        model=row.model,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        usage_estimated=row.usage_estimated,
        cost=to_money(row.cost_usd),
        outcome=_OUTCOMES[Outcome(row.outcome)],
        delivery=_DELIVERIES[Delivery(row.delivery)],
        # The same facts for consumers of the previous release, which may
        # still be running when this event is read.
        cost_usd=format_usd(row.cost_usd),
        story_id=row.subject_id if row.subject_kind == "story" else "",
        attributes=row.attributes or {},
    )
    event.occurred_at.FromDatetime(occurred_at)
    return event


def observe(call: GenerationCall, recorded: RecordedGeneration) -> None:
    """Metrics and a log line for a recorded generation."""
    provider, model = call.provider.name, call.provider.model
    GENERATIONS.labels(provider, model, call.request.purpose.value, recorded.outcome.value).inc()
    GENERATION_TOKENS.labels(provider, model, "prompt").inc(recorded.usage.prompt_tokens)
    GENERATION_TOKENS.labels(provider, model, "completion").inc(recorded.usage.completion_tokens)
    GENERATION_COST.labels(provider, model).inc(float(recorded.cost_usd))
    log.info(
        "generation %s %s: %s/%s %s, %d+%d tokens%s, $%s, %d ms",
        recorded.id,
        recorded.outcome.value,
        provider,
        model,
        call.request.purpose.value,
        recorded.usage.prompt_tokens,
        recorded.usage.completion_tokens,
        " (estimated)" if recorded.usage.estimated else "",
        format_usd(recorded.cost_usd),
        recorded.duration_ms,
    )
