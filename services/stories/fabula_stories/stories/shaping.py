"""Shaping a story without the model: choosing among alternatives, editing a
segment's text (earlier texts kept as revisions), choosing a branch.

A story's segments form a tree and the story follows one path through it
(see paths.py); regenerating and branching, which do call the model, are the
writer's (writer.py). Every change here takes the story row FOR UPDATE and is
refused while a writer holds the story's lease, so the one-writer rule holds
for the path and the texts alike. Nothing is ever deleted.
Takes a session; never commits (the caller's transaction scope does)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from fabula_common.db import utcnow
from fabula_common.errors import InvalidArgument, NotFound, StoryBusy
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.stories import paths, repository
from fabula_stories.stories.models import (
    RevisionSource,
    Segment,
    SegmentKind,
    SegmentRevision,
    Story,
)
from fabula_stories.stories.service import word_count

SEGMENT_TEXT_MAX_LENGTH = 20_000


def validate_segment_text(text: str) -> str:
    """A segment's new text, as the writer typed it (not trimmed)."""
    if not text.strip():
        raise InvalidArgument("text must not be empty")
    if len(text) > SEGMENT_TEXT_MAX_LENGTH:
        raise InvalidArgument(f"text must be at most {SEGMENT_TEXT_MAX_LENGTH} characters")
    # Postgres text cannot hold NUL; refuse it here rather than fail in the database.
    if "\x00" in text:
        raise InvalidArgument("text must not contain NUL characters")
    return text


# --- Reading ---------------------------------------------------------------------


async def list_alternatives(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID, segment_id: uuid.UUID
) -> list[Row]:
    """The segment and its siblings (repository.SEGMENT_COLUMNS), oldest first."""
    story = await _story(session, user_id, story_id)
    segment = await _segment(session, story, segment_id)
    return await repository.alternatives(session, segment)


async def list_revisions(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID, segment_id: uuid.UUID
) -> list[SegmentRevision]:
    story = await _story(session, user_id, story_id)
    segment = await _segment(session, story, segment_id)
    return await repository.revisions(session, segment.id)


@dataclass(frozen=True)
class Branch:
    leaf_id: uuid.UUID
    length: int
    fork_position: int
    preview: str
    is_current: bool
    is_complete: bool
    created_at: dt.datetime


async def list_branches(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID
) -> list[Branch]:
    """Every path from the opening to a leaf (a segment nothing follows),
    newest leaf first, with where each parts from the followed path."""
    story = await _story(session, user_id, story_id)
    return branches_of(await repository.tree(session, story.id), story.head_segment_id)


def branches_of(nodes: Sequence[Row], head_id: uuid.UUID | None) -> list[Branch]:
    by_id = {node.id: node for node in nodes}
    parents = {node.parent_id for node in nodes}
    fork: dict[uuid.UUID, int] = {}

    def fork_position(node_id: uuid.UUID) -> int:
        """Position of the deepest segment on the followed path at or above it."""
        climbed: list[uuid.UUID] = []
        current: uuid.UUID | None = node_id
        found = 0
        while current is not None:
            if current in fork:
                found = fork[current]
                break
            node = by_id[current]
            if node.on_path:
                found = node.position
                break
            climbed.append(current)
            current = node.parent_id
        for seen in climbed:  # remembered: siblings share their climb
            fork[seen] = found
        return found

    leaves = [node for node in nodes if node.id not in parents]
    leaves.sort(key=lambda node: (node.created_at, node.id), reverse=True)
    return [
        Branch(
            leaf_id=leaf.id,
            length=leaf.position,
            fork_position=fork_position(leaf.id),
            preview=leaf.preview,
            is_current=leaf.id == head_id,
            is_complete=leaf.kind == SegmentKind.ending.value,
            created_at=leaf.created_at,
        )
        for leaf in leaves
    ]


# --- Changing ----------------------------------------------------------------------


async def select_alternative(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    segment_id: uuid.UUID,
    alternative_id: uuid.UUID,
) -> Story:
    """Make the story follow `alternative_id` (a sibling of `segment_id`, or
    itself): down to the newest leaf under it."""
    story = await _story_to_change(session, user_id, story_id)
    segment = await _segment(session, story, segment_id)
    alternative = await repository.get_segment(session, story.id, alternative_id)
    if alternative is None or alternative.parent_id != segment.parent_id:
        raise NotFound("alternative not found")
    await paths.follow(session, story, await paths.newest_leaf_under(session, alternative.id))
    story.updated_at = utcnow()
    return story


async def select_branch(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID, branch_id: uuid.UUID
) -> Story:
    """Make the story follow the branch ending at the leaf `branch_id`."""
    story = await _story_to_change(session, user_id, story_id)
    leaf = await repository.get_segment(session, story.id, branch_id)
    if leaf is None or await repository.has_children(session, leaf.id):
        raise NotFound("branch not found")
    await paths.follow(session, story, leaf.id)
    story.updated_at = utcnow()
    return story


# Texts a segment has without any hand in them: `edited` is false for these.
_UNEDITED = frozenset({RevisionSource.generated, RevisionSource.imported})


async def edit_segment(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    segment_id: uuid.UUID,
    text: str,
) -> Segment:
    """Give the segment `text`, keeping the text it had as a revision. The
    same text again changes nothing."""
    story = await _story_to_change(session, user_id, story_id)
    segment = await _segment(session, story, segment_id)
    if text != segment.text:
        await _replace_text(session, story, segment, text, RevisionSource.edited)
    return segment


async def restore_revision(
    session: AsyncSession,
    user_id: uuid.UUID,
    story_id: uuid.UUID,
    segment_id: uuid.UUID,
    revision_id: uuid.UUID,
) -> Segment:
    """Give the segment a revision's text again (undo); the text it had
    becomes a revision too, so a restore can itself be undone."""
    story = await _story_to_change(session, user_id, story_id)
    segment = await _segment(session, story, segment_id)
    revision = await repository.get_revision(session, segment.id, revision_id)
    if revision is None:
        raise NotFound("revision not found")
    # Back to what the model wrote (or the import brought) is no longer an
    # edit; back to an earlier edit is.
    source = RevisionSource(revision.source)
    if source not in _UNEDITED:
        source = RevisionSource.restored
    await _replace_text(session, story, segment, revision.text, source)
    return segment


async def _replace_text(
    session: AsyncSession, story: Story, segment: Segment, text: str, source: RevisionSource
) -> None:
    now = utcnow()
    revision = SegmentRevision(
        id=uuid.uuid4(),
        segment_id=segment.id,
        story_id=story.id,
        number=await repository.next_revision_number(session, segment.id),
        text=segment.text,
        # How the replaced text came to be the segment's.
        source=segment.text_source,
        created_at=now,
    )
    segment.text = text
    segment.text_source = source.value
    segment.word_count = word_count(text)
    segment.edited_at = None if source in _UNEDITED else now
    story.updated_at = now
    await repository.add(session, revision)


# --- Helpers -------------------------------------------------------------------------


async def _story(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> Story:
    story = await repository.get_story(session, user_id, story_id)
    if story is None:
        raise NotFound("story not found")
    return story


async def _story_to_change(
    session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID
) -> Story:
    """The user's story, locked, unless a writer holds it (StoryBusy)."""
    found = await repository.lock_story(session, user_id, story_id)
    if found is None:
        raise NotFound("story not found")
    story, busy = found
    if busy:
        raise StoryBusy(
            "a segment is being written for this story; retry when it is done",
            metadata={"story_id": str(story.id)},
        )
    return story


async def _segment(session: AsyncSession, story: Story, segment_id: uuid.UUID) -> Segment:
    segment = await repository.get_segment(session, story.id, segment_id)
    if segment is None:
        raise NotFound("segment not found")
    return segment

