"""Domain rules of stories: input validation, ownership, the complete-story
rule, one writer at a time per story, segment numbering, and exactly one
GenerationDelivered or GenerationDiscarded per generation asked for. Takes a
session; never commits (the caller's transaction scope does)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from fabula_common.db import Database, Row, utcnow
from fabula_common.errors import InvalidArgument, NotFound, StoryBusy, StoryComplete, Unavailable
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.context import builder
from fabula_stories.stories import events, paths, repository
from fabula_stories.stories.events import DeliverySubjects
from fabula_stories.stories.models import (
    GENRE_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    PendingGeneration,
    RevisionSource,
    Segment,
    SegmentKind,
    Story,
)

MAX_CHARACTERS = 20
CHARACTER_MAX_LENGTH = 100
OPENING_LINE_MAX_LENGTH = 1000
DIRECTION_MAX_LENGTH = 4000
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


# --- Input -------------------------------------------------------------------


@dataclass(frozen=True)
class NewStory:
    """A validated CreateStory request. `title` is None when the model should name it."""

    user_id: uuid.UUID
    genre: str
    title: str | None
    characters: list[str] = field(default_factory=list)
    opening_line: str | None = None


def parse_user_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument("user_id must be a UUID") from None


def parse_story_id(value: str) -> uuid.UUID:
    # No story has a malformed id, so asking for one finds nothing.
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("story not found") from None


def _bounded(name: str, value: str, max_length: int) -> str:
    if len(value) > max_length:
        raise InvalidArgument(f"{name} must be at most {max_length} characters")
    # Postgres text cannot hold NUL; refuse it here rather than fail in the database.
    if "\x00" in value:
        raise InvalidArgument(f"{name} must not contain NUL characters")
    return value


def validate_new_story(
    *,
    user_id: str,
    genre: str,
    title: str | None,
    characters: Sequence[str],
    opening_line: str | None,
) -> NewStory:
    owner = parse_user_id(user_id)
    genre = genre.strip()
    if not genre:
        raise InvalidArgument("genre is required")
    _bounded("genre", genre, GENRE_MAX_LENGTH)
    # A blank title asks for a generated one, like an absent one.
    title = (title or "").strip() or None
    if title is not None:
        _bounded("title", title, TITLE_MAX_LENGTH)
    if len(characters) > MAX_CHARACTERS:
        raise InvalidArgument(f"characters must have at most {MAX_CHARACTERS} items")
    names = [name.strip() for name in characters]
    for name in names:
        if not name:
            raise InvalidArgument("characters must not contain empty names")
        _bounded("characters item", name, CHARACTER_MAX_LENGTH)
    opening_line = (opening_line or "").strip() or None
    if opening_line is not None:
        _bounded("opening_line", opening_line, OPENING_LINE_MAX_LENGTH)
    return NewStory(
        user_id=owner, genre=genre, title=title, characters=names, opening_line=opening_line
    )


def validate_direction(direction: str | None) -> str:
    """The user's wish for the next segment; empty when none."""
    return _bounded("direction", (direction or "").strip(), DIRECTION_MAX_LENGTH)


def page_size(limit: int) -> int:
    if limit == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    return limit


# A cursor is the (created_at, id) key of the last story of the previous page:
# microseconds since the epoch (Postgres' precision) and the 16 id bytes.
_CURSOR = struct.Struct(">q16s")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def encode_cursor(created_at: dt.datetime, story_id: uuid.UUID) -> str:
    micros = (created_at - _EPOCH) // dt.timedelta(microseconds=1)
    raw = _CURSOR.pack(micros, story_id.bytes)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID] | None:
    """The key a cursor stands for; None for the first page (empty cursor)."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded, altchars=b"-_", validate=True)
        micros, id_bytes = _CURSOR.unpack(raw)
        created_at = _EPOCH + dt.timedelta(microseconds=micros)
    except (binascii.Error, ValueError, struct.error, OverflowError):
        raise InvalidArgument("cursor is malformed") from None
    return created_at, uuid.UUID(bytes=id_bytes)


# --- What the model is told ----------------------------------------------------


@dataclass(frozen=True)
class GeneratedText:
    """The generation service's answer, as stored with a segment."""

    text: str
    provider: str
    model: str
    is_language_model: bool
    title: str = ""


@dataclass(frozen=True)
class WriteClaim:
    """A writer's claim of the generation it asks for (a pending_generations
    row) and, but for an opening, of its story (the story's write lease),
    renewed while it works."""

    generation_id: uuid.UUID
    user_id: uuid.UUID
    story_id: uuid.UUID
    kind: SegmentKind
    # The segment the new one will follow (None: an opening), as claimed.
    parent_id: uuid.UUID | None = None


class ClaimLost(Unavailable):
    """The writer's claim was discarded before its text could be stored (it
    could not renew it in time, e.g. the database was away): the text is not
    stored and the generation does not count; the user may simply retry."""


def title_for(new: NewStory, generated_title: str) -> str:
    title = new.title or generated_title.strip()[:TITLE_MAX_LENGTH].strip()
    return title or f"Untitled {new.genre} story"


# --- Operations ----------------------------------------------------------------


async def claim_opening(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    generation_id: uuid.UUID,
    *,
    lease_seconds: float,
    owner: str,
) -> WriteClaim:
    """Record the generation of a new story's opening before it is asked for
    (the story is stored with it, so there is no story to hold yet), as made
    by the stories process `owner`."""
    claim = WriteClaim(generation_id, user_id, story_id, SegmentKind.opening)
    await _add_pending(session, claim, lease_seconds, owner)
    return claim


async def start_writing(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    kind: SegmentKind,
    generation_id: uuid.UUID,
    *,
    lease_seconds: float,
    owner: str,
    after_segment_id: uuid.UUID | None = None,
    regenerates_segment_id: uuid.UUID | None = None,
) -> WriteClaim:
    """Claim a story the user owns for writing a segment with `generation_id`
    (by the stories process `owner`): its next one (after the head), one after
    `after_segment_id` (a branch), or another version of
    `regenerates_segment_id` (its kind, after its parent).
    One segment is written at a time: while another writer holds the story,
    the claim is refused. A complete story cannot be continued at its head,
    nor can any ending be followed; branching from an earlier segment and
    regenerating (even an ending) are allowed."""
    claimed = await repository.claim_for_writing(
        session,
        user_id,
        story_id,
        generation_id,
        dt.timedelta(seconds=lease_seconds),
        kind=kind.value,
        claimed_until=utcnow() + dt.timedelta(seconds=lease_seconds),
        owner=owner,
        after_segment_id=after_segment_id,
        regenerates_segment_id=regenerates_segment_id,
    )
    if claimed is None:
        # Tell the caller why: a missing story or segment, or a complete
        # story, is final; a busy one is not.
        owned = await _owned(session, user_id, story_id)
        target_id = regenerates_segment_id or after_segment_id
        if target_id is not None:
            target = await _segment_of(session, owned, target_id)
            if regenerates_segment_id is None and target.kind == SegmentKind.ending.value:
                raise _complete(owned)
        else:
            _ensure_open(owned)
        raise StoryBusy(
            "a segment is already being written for this story; retry when it is done",
            metadata={"story_id": str(owned.id)},
        )
    return WriteClaim(
        generation_id, user_id, claimed.id, SegmentKind(claimed.kind), claimed.parent_id
    )


async def load_context(
    session: AsyncSession,
    claim: WriteClaim,
    direction: str,
    *,
    max_segments: int,
    max_chars: int,
    limits: builder.ContextLimits,
) -> builder.BuiltContext:
    """What the model is given to write the claim's segment: the story's
    memory, author's note and lore, and the path up to the segment it follows
    (for a regeneration, up to the parent of the segment it rewrites)."""
    return await builder.load_for_writing(
        session,
        claim.user_id,
        claim.story_id,
        after_segment_id=claim.parent_id,
        direction=direction,
        max_segments=max_segments,
        max_chars=max_chars,
        limits=limits,
    )


async def _add_pending(
    session: AsyncSession, claim: WriteClaim, lease_seconds: float, owner: str
) -> None:
    await repository.add(
        session,
        PendingGeneration(
            generation_id=claim.generation_id,
            story_id=claim.story_id,
            user_id=claim.user_id,
            kind=claim.kind.value,
            claimed_until=utcnow() + dt.timedelta(seconds=lease_seconds),
            owner=owner,
        ),
    )


async def renew_claim(session: AsyncSession, claim: WriteClaim, lease_seconds: float) -> bool:
    """Keep the claim (and the story) for another `lease_seconds`; False when
    the claim was discarded meanwhile."""
    return await repository.renew_claim(
        session, claim.generation_id, dt.timedelta(seconds=lease_seconds)
    )


async def _take_claim(session: AsyncSession, claim: WriteClaim) -> PendingGeneration:
    pending = await repository.take_pending(session, claim.generation_id)
    if pending is None:
        raise ClaimLost("the text could not be stored in time; retry")
    return pending


async def store_opening(
    session: AsyncSession,
    subjects: DeliverySubjects,
    claim: WriteClaim,
    new: NewStory,
    opening: GeneratedText,
) -> Story:
    """The story with its opening segment (position 1, its head), delivered."""
    pending = await _take_claim(session, claim)
    now = utcnow()
    segment = _segment(claim, None, 1, opening, now)
    segment.on_path = True
    story = Story(
        id=claim.story_id,
        user_id=new.user_id,
        title=title_for(new, opening.title),
        genre=new.genre,
        characters=list(new.characters),
        opening_line=new.opening_line,
        is_complete=False,
        head_segment_id=segment.id,
        created_at=now,
        updated_at=now,
        segments=[segment],
    )
    await repository.add(session, story)
    await events.generation_delivered(session, subjects, pending, segment.id)
    return story


async def store_segment(
    session: AsyncSession, subjects: DeliverySubjects, claim: WriteClaim, generated: GeneratedText
) -> tuple[Story, Segment]:
    """Store the segment the claim's holder generated where the claim put it
    (after the parent recorded when claiming; a regeneration as another
    version of the segment, same parent and kind), make the story follow it,
    report it delivered and free the story for the next writer. The story
    row stays locked until the transaction ends, so its path changes one
    writer at a time. Raises (and stores nothing) when the claim was
    discarded or the story was deleted meanwhile."""
    pending = await _take_claim(session, claim)
    story = await _owned(session, claim.user_id, claim.story_id, for_update=True)
    now = utcnow()
    position = 1
    if pending.parent_id is not None:
        parent = await repository.get_segment(session, story.id, pending.parent_id)
        if parent is None:  # only ever with the story, which _owned found
            raise NotFound("segment not found")
        position = parent.position + 1
    segment = _segment(claim, pending.parent_id, position, generated, now)
    story.updated_at = now
    # Unless the lease expired and another writer holds the story by now.
    if story.writing_generation_id == claim.generation_id:
        story.writing_until = None
        story.writing_generation_id = None
    await repository.add(session, segment)
    await paths.follow(session, story, segment.id)
    await events.generation_delivered(session, subjects, pending, segment.id)
    return story, segment


async def discard(
    session: AsyncSession, subjects: DeliverySubjects, claim: WriteClaim, reason: str
) -> bool:
    """Give up the claim's generation without storing it: free its story for
    the next writer and report it discarded. False when the claim was already
    taken (its text stored, or the sweeper discarded it)."""
    pending = await repository.take_pending(session, claim.generation_id)
    if pending is None:
        return False
    await repository.release_writing(session, [pending])
    await events.generation_discarded(session, subjects, pending, reason)
    return True


async def discard_expired(session: AsyncSession, subjects: DeliverySubjects, limit: int) -> int:
    """Discard up to `limit` claims whose writer stopped renewing them (it
    died, or could not reach the database for a whole lease); how many."""
    expired = await repository.take_expired_pending(session, limit)
    if expired:
        await repository.release_writing(session, expired)
    for pending in expired:
        await events.generation_discarded(session, subjects, pending, events.CLAIM_EXPIRED)
    return len(expired)


async def discard_owned(
    session: AsyncSession,
    subjects: DeliverySubjects,
    owner: str,
    created_before: dt.datetime,
    limit: int,
) -> int:
    """Discard up to `limit` claims the stories process `owner` made before
    `created_before`: called by that process when it starts again, they are
    its previous incarnation's, whose writers died with it; how many."""
    owned = await repository.take_owned_pending(session, owner, created_before, limit)
    if owned:
        await repository.release_writing(session, owned)
    for pending in owned:
        await events.generation_discarded(session, subjects, pending, events.WRITER_RESTARTED)
    return len(owned)


async def get_story(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> Story:
    """The story with its segments in order."""
    return await _owned(session, user_id, story_id, with_segments=True)


async def get_story_summary(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID
) -> tuple[Story, int]:
    """The story and its segment count, without loading its segments."""
    found = await repository.get_story_with_segment_count(session, user_id, story_id)
    if found is None:
        raise NotFound("story not found")
    return found


async def read_story(db: Database, user_id: uuid.UUID, story_id: uuid.UUID) -> Sequence[Row]:
    """The read path of a story with its segments: plain rows (see
    repository.STORY_WITH_SEGMENTS), no ORM objects."""
    rows = await db.fetch(repository.STORY_WITH_SEGMENTS, story_id=story_id, user_id=user_id)
    if not rows:
        raise NotFound("story not found")
    return rows


async def read_story_summary(db: Database, user_id: uuid.UUID, story_id: uuid.UUID) -> Row:
    """The read path of a story without its segments, with `segment_count`."""
    rows = await db.fetch(
        repository.STORY_WITH_SEGMENT_COUNT, story_id=story_id, user_id=user_id
    )
    if not rows:
        raise NotFound("story not found")
    return rows[0]


async def read_segment(db: Database, user_id: uuid.UUID, segment_id: uuid.UUID) -> Row:
    """One segment of the user's as every read answers it (SEGMENT_COLUMNS)."""
    rows = await db.fetch(repository.SEGMENT_OF_USER, segment_id=segment_id, user_id=user_id)
    if not rows:
        raise NotFound("segment not found")
    return rows[0]


def validate_after_position(after_position: int) -> int:
    if after_position < 0:
        raise InvalidArgument("after_position must not be negative")
    return after_position


@dataclass(frozen=True)
class SegmentPage:
    segments: list[Row]  # repository.SEGMENT_COLUMNS
    next_after_position: int | None  # None on the last page


async def list_segments(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    after_position: int,
    limit: int,
) -> SegmentPage:
    """A page of the story's segments after `after_position`, in story order."""
    # One row more than asked tells whether another page follows.
    rows = await repository.list_segments(session, user_id, story_id, after_position, limit + 1)
    # An empty page is either past the story's end or no story of the user's.
    if not rows and not await repository.story_exists(session, user_id, story_id):
        raise NotFound("story not found")
    segments = rows[:limit]
    next_after = segments[-1].position if len(rows) > limit else None
    return SegmentPage(segments=segments, next_after_position=next_after)


@dataclass(frozen=True)
class StoryPage:
    items: list[tuple[Story, int]]  # (story, segment count)
    next_cursor: str


async def list_stories(
    session: AsyncSession, user_id: uuid.UUID, limit: int, cursor: str
) -> StoryPage:
    after = decode_cursor(cursor)
    # One row more than asked tells whether another page follows.
    rows = list(await repository.list_stories(session, user_id, limit + 1, after))
    items = rows[:limit]
    next_cursor = ""
    if len(rows) > limit:
        last, _ = items[-1]
        next_cursor = encode_cursor(last.created_at, last.id)
    return StoryPage(items=items, next_cursor=next_cursor)


async def delete_story(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> None:
    if not await repository.delete_story(session, user_id, story_id):
        raise NotFound("story not found")


async def _owned(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    *,
    with_segments: bool = False,
    for_update: bool = False,
) -> Story:
    story = await repository.get_story(
        session, user_id, story_id, with_segments=with_segments, for_update=for_update
    )
    if story is None:
        raise NotFound("story not found")
    return story


def _ensure_open(story: Story) -> None:
    if story.is_complete:
        raise _complete(story)


def _complete(story: Story) -> StoryComplete:
    """Nothing follows an ending: a complete story's head, or another branch's."""
    return StoryComplete("story is complete", metadata={"story_id": str(story.id)})


async def _segment_of(session: AsyncSession, story: Story, segment_id: uuid.UUID) -> Segment:
    segment = await repository.get_segment(session, story.id, segment_id)
    if segment is None:
        raise NotFound("segment not found")
    return segment


def parse_segment_id(value: str, name: str = "segment") -> uuid.UUID:
    # No segment has a malformed id, so asking for one finds nothing.
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"{name} not found") from None


def word_count(text: str) -> int:
    return len(text.split())


def _segment(
    claim: WriteClaim,
    parent_id: uuid.UUID | None,
    position: int,
    generated: GeneratedText,
    created_at: dt.datetime,
) -> Segment:
    return Segment(
        id=uuid.uuid4(),
        story_id=claim.story_id,
        parent_id=parent_id,
        position=position,
        kind=claim.kind.value,
        text=generated.text,
        word_count=word_count(generated.text),
        text_source=RevisionSource.generated.value,
        # Joins the path when the story follows it (paths.follow).
        on_path=False,
        provider=generated.provider,
        model=generated.model,
        is_language_model=generated.is_language_model,
        # The id stories chose and generation and billing know the call by.
        generation_id=str(claim.generation_id),
        created_at=created_at,
    )
