"""Shaping a story over real gRPC (real billing and generation with the
offline provider, private Postgres and NATS): alternatives, edits with
revisions, branches, and the followed path every read returns."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from fabula.stories.v1 import stories_pb2
from fabula_common.db import Database
from fabula_common.errors import error_reason
from fabula_common.testing import free_port
from fabula_stories.settings import Settings
from fabula_stories.stories.models import Story
from sqlalchemy import func, update

from .test_delivery import Published, one_event_each, published  # noqa: F401 - fixture
from .test_stories import (
    CONTINUATION,
    ENDING,
    OPENING,
    Stub,
    billing,  # noqa: F401 - fixture
    create,
    end,
    get,
    new_user,
    peers,  # noqa: F401 - fixture
    refused,
    settled,
    stories,  # noqa: F401 - fixture
    stories_service,
)

BASIC = stories_pb2.STORY_VIEW_BASIC


@pytest.fixture
async def db(test_database) -> AsyncIterator[Database]:
    database = Database(Settings())
    yield database
    await database.dispose()


async def written(call) -> stories_pb2.Segment:
    """The stored segment a ContinueStory/RegenerateSegment stream ends with."""
    events = [event async for event in call]
    assert events[-1].HasField("segment")
    return events[-1].segment


def continue_call(stories: Stub, user_id: str, story_id: str, after: str = "", key: str = ""):
    return stories.ContinueStory(
        stories_pb2.ContinueStoryRequest(
            user_id=user_id, story_id=story_id, after_segment_id=after, idempotency_key=key
        )
    )


def regenerate_call(stories: Stub, user_id: str, story_id: str, segment_id: str, key: str = ""):
    return stories.RegenerateSegment(
        stories_pb2.RegenerateSegmentRequest(
            user_id=user_id, story_id=story_id, segment_id=segment_id, idempotency_key=key
        )
    )


async def alternatives(stories: Stub, user_id: str, story_id: str, segment_id: str):
    reply = await stories.ListAlternatives(
        stories_pb2.SegmentRef(user_id=user_id, story_id=story_id, segment_id=segment_id)
    )
    return list(reply.alternatives)


async def branches(stories: Stub, user_id: str, story_id: str) -> list[stories_pb2.Branch]:
    reply = await stories.ListBranches(stories_pb2.StoryRef(user_id=user_id, story_id=story_id))
    return list(reply.branches)


async def story_of(stories: Stub, user_id: str, length: int) -> stories_pb2.Story:
    """A story whose followed path has `length` segments."""
    story = await create(stories, user_id)
    for _ in range(length - 1):
        await written(continue_call(stories, user_id, story.id))
    return await get(stories, user_id, story.id)


def texts(story: stories_pb2.Story) -> list[str]:
    return [segment.text for segment in story.segments]


async def hold_lease(db: Database, story_id: str) -> None:
    """As a writer does while it writes a segment of the story."""
    async with db.session_scope() as session:
        await session.execute(
            update(Story)
            .where(Story.id == uuid.UUID(story_id))
            .values(
                writing_until=func.now() + dt.timedelta(hours=1),
                writing_generation_id=uuid.uuid4(),
            )
        )


# --- Reading the followed path ------------------------------------------------------


async def test_segments_tell_their_parent_words_and_alternatives(stories: Stub):
    user_id = new_user()
    story = await story_of(stories, user_id, 3)

    opening, second, third = story.segments
    assert [s.parent_id for s in story.segments] == ["", opening.id, second.id]
    assert story.head_segment_id == third.id
    assert story.segment_count == 3
    for segment in story.segments:
        assert segment.word_count == len(segment.text.split()) > 0
        assert (segment.alternative_count, segment.alternative_number) == (1, 1)
        assert not segment.edited
    assert (story.memory, story.authors_note, story.is_favorite) == ("", "", False)


# --- Alternatives --------------------------------------------------------------------


async def test_regenerate_twice_then_select_the_second_version(stories: Stub, billing):  # noqa: F811
    user_id = new_user()
    story = await story_of(stories, user_id, 3)
    original = story.segments[2]

    first = await written(regenerate_call(stories, user_id, story.id, original.id))
    second = await written(regenerate_call(stories, user_id, story.id, original.id))

    # Another version of the segment: same parent, position and kind; the
    # story follows the newest.
    assert (second.parent_id, second.position, second.kind) == (
        original.parent_id,
        3,
        CONTINUATION,
    )
    assert (second.alternative_count, second.alternative_number) == (3, 3)
    now = await get(stories, user_id, story.id)
    assert [s.id for s in now.segments] == [*(s.id for s in story.segments[:2]), second.id]
    assert now.segment_count == 3 and now.head_segment_id == second.id

    versions = await alternatives(stories, user_id, story.id, original.id)
    assert [v.id for v in versions] == [original.id, first.id, second.id]
    assert [v.selected for v in versions] == [False, False, True]
    assert [v.alternative_number for v in versions] == [1, 2, 3]

    chosen = await stories.SelectAlternative(
        stories_pb2.SelectAlternativeRequest(
            user_id=user_id, story_id=story.id, segment_id=second.id, alternative_id=first.id
        )
    )
    assert chosen.head_segment_id == first.id and chosen.segment_count == 3
    assert list(chosen.segments) == []  # the BASIC view
    now = await get(stories, user_id, story.id)
    assert now.segments[2].id == first.id
    versions = await alternatives(stories, user_id, story.id, original.id)
    assert [v.selected for v in versions] == [False, True, False]
    # Nothing was deleted, and each regeneration cost one generation.
    await settled(billing, user_id, generations=5)


async def test_selecting_an_alternative_follows_the_newest_leaf_under_it(stories: Stub):
    user_id = new_user()
    story = await story_of(stories, user_id, 3)
    second = story.segments[1]
    other = await written(regenerate_call(stories, user_id, story.id, second.id))
    assert (await get(stories, user_id, story.id)).segment_count == 2

    chosen = await stories.SelectAlternative(
        stories_pb2.SelectAlternativeRequest(
            user_id=user_id, story_id=story.id, segment_id=other.id, alternative_id=second.id
        )
    )

    # Back to the original second segment, and on to what followed it.
    assert chosen.head_segment_id == story.segments[2].id
    assert texts(await get(stories, user_id, story.id)) == texts(story)


async def test_regenerating_the_opening_or_an_ending_keeps_its_kind(stories: Stub):
    user_id = new_user()
    story = await story_of(stories, user_id, 2)
    ended = await end(stories, user_id, story.id)
    ending = ended.segments[-1]
    assert ended.is_complete

    again = await written(regenerate_call(stories, user_id, story.id, ending.id))
    assert (again.kind, again.position, again.parent_id) == (ENDING, 3, ending.parent_id)
    assert (await get(stories, user_id, story.id)).is_complete

    opening = await written(regenerate_call(stories, user_id, story.id, story.segments[0].id))
    assert (opening.kind, opening.position, opening.parent_id) == (OPENING, 1, "")
    now = await get(stories, user_id, story.id)
    # A new opening is a path of its own, and not complete.
    assert [s.id for s in now.segments] == [opening.id] and not now.is_complete
    assert now.title == story.title


async def test_a_failed_regeneration_leaves_the_story_as_it_was(stories: Stub, billing, db):  # noqa: F811
    user_id = new_user()
    story = await story_of(stories, user_id, 2)
    before = await get(stories, user_id, story.id)

    closed_port = f"127.0.0.1:{free_port()}"
    async with stories_service(closed_port) as without_generation:
        error = await refused(
            written(regenerate_call(without_generation, user_id, story.id, story.segments[1].id))
        )

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert await get(stories, user_id, story.id) == before
    assert len(await alternatives(stories, user_id, story.id, story.segments[1].id)) == 1
    # Free again at once, and billed for nothing.
    await written(regenerate_call(stories, user_id, story.id, story.segments[1].id))
    await settled(billing, user_id, generations=3)


async def test_each_regeneration_is_delivered_once_and_a_retry_costs_nothing(
    stories: Stub,
    billing,  # noqa: F811
    published: Published,  # noqa: F811
):
    user_id = new_user()
    story = await story_of(stories, user_id, 2)
    key = str(uuid.uuid4())

    first = await written(regenerate_call(stories, user_id, story.id, story.segments[1].id, key))
    retried = await written(regenerate_call(stories, user_id, story.id, story.segments[1].id, key))
    # The key with another request (a continue) is refused as reused.
    reused = await refused(written(continue_call(stories, user_id, story.id, key=key)))

    assert retried == first
    assert error_reason(reused) == "idempotency-key-reused"
    await one_event_each(published, user_id, generations=3)
    delivered, discarded = published.of_user(user_id)
    assert discarded == [] and delivered[-1].segment_id == first.id
    await settled(billing, user_id, generations=3)


# --- Edits and revisions -------------------------------------------------------------


async def test_edit_then_restore_the_original(stories: Stub, billing):  # noqa: F811
    user_id = new_user()
    story = await story_of(stories, user_id, 2)
    segment = story.segments[1]

    edited = await stories.EditSegment(
        stories_pb2.EditSegmentRequest(
            user_id=user_id, story_id=story.id, segment_id=segment.id, text="A new text, by hand."
        )
    )
    assert (edited.id, edited.text, edited.edited, edited.word_count) == (
        segment.id,
        "A new text, by hand.",
        True,
        5,
    )
    assert (await get(stories, user_id, story.id)).segments[1] == edited
    [revision] = (
        await stories.ListRevisions(
            stories_pb2.SegmentRef(user_id=user_id, story_id=story.id, segment_id=segment.id)
        )
    ).revisions
    assert (revision.number, revision.text, revision.source) == (
        1,
        segment.text,
        stories_pb2.REVISION_SOURCE_GENERATED,
    )

    restored = await stories.RestoreRevision(
        stories_pb2.RestoreRevisionRequest(
            user_id=user_id, story_id=story.id, segment_id=segment.id, revision_id=revision.id
        )
    )

    assert restored.text == segment.text and restored.word_count == segment.word_count
    # Undone: the text is the model's again, not an edit.
    assert not restored.edited
    revisions = (
        await stories.ListRevisions(
            stories_pb2.SegmentRef(user_id=user_id, story_id=story.id, segment_id=segment.id)
        )
    ).revisions
    # Newest first: the edited text is kept too, so the restore can be undone.
    assert [(r.number, r.text, r.source) for r in revisions] == [
        (2, "A new text, by hand.", stories_pb2.REVISION_SOURCE_EDITED),
        (1, segment.text, stories_pb2.REVISION_SOURCE_GENERATED),
    ]
    # Restoring the edit again is an edit again, and itself a revision.
    again = await stories.RestoreRevision(
        stories_pb2.RestoreRevisionRequest(
            user_id=user_id, story_id=story.id, segment_id=segment.id, revision_id=revisions[0].id
        )
    )
    assert (again.text, again.edited) == ("A new text, by hand.", True)
    latest = (
        await stories.ListRevisions(
            stories_pb2.SegmentRef(user_id=user_id, story_id=story.id, segment_id=segment.id)
        )
    ).revisions[0]
    assert (latest.number, latest.text, latest.source) == (
        3,
        segment.text,
        stories_pb2.REVISION_SOURCE_GENERATED,
    )
    # No model call.
    await settled(billing, user_id, generations=2)


@pytest.mark.parametrize("text", ["", "   \n", "x" * 20_001, "nul\x00"])
async def test_an_empty_overlong_or_nul_text_is_invalid(stories: Stub, text: str):
    user_id = new_user()
    story = await create(stories, user_id)

    error = await refused(
        stories.EditSegment(
            stories_pb2.EditSegmentRequest(
                user_id=user_id, story_id=story.id, segment_id=story.segments[0].id, text=text
            )
        )
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "text" in error.details()


# --- Branches --------------------------------------------------------------------------


async def test_branch_from_segment_two_then_switch_back(stories: Stub):
    user_id = new_user()
    story = await story_of(stories, user_id, 3)
    second = story.segments[1]

    branched = await written(continue_call(stories, user_id, story.id, after=second.id))

    assert (branched.parent_id, branched.position) == (second.id, 3)
    now = await get(stories, user_id, story.id)
    assert [s.id for s in now.segments] == [story.segments[0].id, second.id, branched.id]
    listed = await branches(stories, user_id, story.id)
    assert [(b.id, b.length, b.fork_position, b.is_current) for b in listed] == [
        (branched.id, 3, 3, True),
        (story.segments[2].id, 3, 2, False),
    ]
    assert listed[1].preview == story.segments[2].text[:120]

    back = await stories.SelectBranch(
        stories_pb2.SelectBranchRequest(
            user_id=user_id, story_id=story.id, branch_id=story.segments[2].id
        )
    )

    assert back.head_segment_id == story.segments[2].id and back.segment_count == 3
    assert [s.id for s in (await get(stories, user_id, story.id)).segments] == [
        s.id for s in story.segments
    ]
    # Continuing goes on from the head of the branch followed.
    after = await written(continue_call(stories, user_id, story.id))
    assert (after.parent_id, after.position) == (story.segments[2].id, 4)


async def test_a_complete_story_may_branch_but_not_continue_at_its_end(stories: Stub):
    user_id = new_user()
    story = await story_of(stories, user_id, 2)
    ended = await end(stories, user_id, story.id)
    ending = ended.segments[-1]

    at_end = await refused(written(continue_call(stories, user_id, story.id)))
    after_ending = await refused(written(continue_call(stories, user_id, story.id, ending.id)))
    branched = await written(continue_call(stories, user_id, story.id, story.segments[0].id))

    assert error_reason(at_end) == error_reason(after_ending) == "story-complete"
    now = await get(stories, user_id, story.id)
    assert not now.is_complete and now.head_segment_id == branched.id
    # Back to the ending: complete again.
    back = await stories.SelectBranch(
        stories_pb2.SelectBranchRequest(user_id=user_id, story_id=story.id, branch_id=ending.id)
    )
    assert back.is_complete


async def test_only_a_leaf_is_a_branch(stories: Stub):
    user_id = new_user()
    story = await story_of(stories, user_id, 2)

    error = await refused(
        stories.SelectBranch(
            stories_pb2.SelectBranchRequest(
                user_id=user_id, story_id=story.id, branch_id=story.segments[0].id
            )
        )
    )

    assert error.code() == grpc.StatusCode.NOT_FOUND


# --- One writer at a time, and nobody else's ---------------------------------------------


async def test_shaping_is_refused_while_a_segment_is_written(stories: Stub, db):
    user_id = new_user()
    story = await story_of(stories, user_id, 2)
    await hold_lease(db, story.id)
    segment = story.segments[1]

    calls = [
        stories.EditSegment(
            stories_pb2.EditSegmentRequest(
                user_id=user_id, story_id=story.id, segment_id=segment.id, text="new"
            )
        ),
        stories.SelectAlternative(
            stories_pb2.SelectAlternativeRequest(
                user_id=user_id, story_id=story.id, segment_id=segment.id, alternative_id=segment.id
            )
        ),
        stories.SelectBranch(
            stories_pb2.SelectBranchRequest(user_id=user_id, story_id=story.id, branch_id=segment.id)
        ),
        written(regenerate_call(stories, user_id, story.id, segment.id)),
        written(continue_call(stories, user_id, story.id, story.segments[0].id)),
    ]
    for call in calls:
        error = await refused(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(error) == "story-busy"
    assert await get(stories, user_id, story.id) == story


async def test_an_edit_racing_a_writer_either_waits_its_turn_or_is_refused(stories: Stub):
    user_id = new_user()
    story = await story_of(stories, user_id, 2)
    segment = story.segments[1]

    async def edit() -> str:
        try:
            await stories.EditSegment(
                stories_pb2.EditSegmentRequest(
                    user_id=user_id, story_id=story.id, segment_id=segment.id, text="Edited."
                )
            )
        except grpc.aio.AioRpcError as error:
            return error_reason(error)
        return "edited"

    outcomes = await asyncio.gather(
        edit(), written(continue_call(stories, user_id, story.id)), return_exceptions=True
    )

    assert outcomes[0] in {"edited", "story-busy"}
    assert isinstance(outcomes[1], stories_pb2.Segment), outcomes[1]


async def test_another_users_segments_and_branches_are_not_found(stories: Stub):
    owner, intruder = new_user(), new_user()
    story = await story_of(stories, owner, 2)
    mine = await create(stories, intruder)
    segment = story.segments[1]
    ref = {"story_id": story.id, "segment_id": segment.id}

    calls = [
        stories.ListAlternatives(stories_pb2.SegmentRef(user_id=intruder, **ref)),
        stories.ListRevisions(stories_pb2.SegmentRef(user_id=intruder, **ref)),
        stories.EditSegment(stories_pb2.EditSegmentRequest(user_id=intruder, text="x", **ref)),
        stories.SelectAlternative(
            stories_pb2.SelectAlternativeRequest(
                user_id=intruder, alternative_id=segment.id, **ref
            )
        ),
        stories.RestoreRevision(
            stories_pb2.RestoreRevisionRequest(
                user_id=intruder, revision_id=str(uuid.uuid4()), **ref
            )
        ),
        stories.ListBranches(stories_pb2.StoryRef(user_id=intruder, story_id=story.id)),
        stories.SelectBranch(
            stories_pb2.SelectBranchRequest(
                user_id=intruder, story_id=story.id, branch_id=segment.id
            )
        ),
        written(regenerate_call(stories, intruder, story.id, segment.id)),
        # Another story's segment, named in one's own story.
        written(regenerate_call(stories, intruder, mine.id, segment.id)),
        written(continue_call(stories, intruder, mine.id, segment.id)),
        stories.EditSegment(
            stories_pb2.EditSegmentRequest(
                user_id=intruder, story_id=mine.id, segment_id=segment.id, text="x"
            )
        ),
        stories.ListAlternatives(
            stories_pb2.SegmentRef(user_id=owner, story_id=story.id, segment_id="not-an-id")
        ),
    ]
    for call in calls:
        error = await refused(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND, error
    assert await get(stories, owner, story.id) == story


async def test_an_alternative_must_be_a_sibling(stories: Stub):
    user_id = new_user()
    story = await story_of(stories, user_id, 3)

    error = await refused(
        stories.SelectAlternative(
            stories_pb2.SelectAlternativeRequest(
                user_id=user_id,
                story_id=story.id,
                segment_id=story.segments[1].id,
                alternative_id=story.segments[2].id,
            )
        )
    )

    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_list_stories_counts_the_followed_path(stories: Stub):
    user_id = new_user()
    story = await story_of(stories, user_id, 3)
    await written(regenerate_call(stories, user_id, story.id, story.segments[1].id))

    listed = await stories.ListStories(stories_pb2.ListStoriesRequest(user_id=user_id))
    basic = await stories.GetStory(
        stories_pb2.GetStoryRequest(user_id=user_id, story_id=story.id, view=BASIC)
    )
    page = await stories.ListSegments(
        stories_pb2.ListSegmentsRequest(user_id=user_id, story_id=story.id)
    )

    assert [s.segment_count for s in listed.items] == [2]
    assert basic.segment_count == 2 == len(page.segments)
    assert page.segments[1].alternative_count == 2
