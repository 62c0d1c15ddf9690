"""Search, filters, statistics and share links over real gRPC and Postgres.

Stories are written straight into the database with texts chosen by the test
(the writer's own path is covered by test_stories.py and the e2e test), so the
ranking and snippets are known; everything is read through the service.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
import pytest
from fabula.stories.v1 import stories_pb2, stories_pb2_grpc
from fabula_common.db import Database
from fabula_common.testing import free_port, running_app
from fabula_stories.app import create_app
from fabula_stories.settings import Settings
from fabula_stories.stories.models import Segment, Story, StoryShare
from sqlalchemy import select

Stub = stories_pb2_grpc.StoriesServiceStub
NOT_FOUND = grpc.StatusCode.NOT_FOUND
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
START = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
async def db(test_database) -> AsyncIterator[Database]:
    database = Database(Settings())
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
async def stories(test_database, test_stream) -> AsyncIterator[Stub]:
    # Nothing here asks for a generation: the generation address stays closed.
    settings = Settings(grpc_port=free_port(), generation_addr=f"127.0.0.1:{free_port()}")
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield Stub(channel)


@dataclass
class Written:
    story_id: str
    segment_ids: list[str]


_clock = [START]


async def write_story(
    db: Database,
    user_id: str,
    *,
    title: str = "Untitled",
    genre: str = "mystery",
    characters: Sequence[str] = (),
    texts: Sequence[str] = ("It began.",),
    off_path: Sequence[str] = (),
    is_complete: bool = False,
    is_favorite: bool = False,
) -> Written:
    """A story with `texts` on its followed path (word counts as the writer
    stores them) and `off_path` texts as alternatives of its last segment;
    each story a minute newer than the one before."""
    _clock[0] += dt.timedelta(minutes=1)
    story = Story(
        id=uuid.uuid4(),
        user_id=uuid.UUID(user_id),
        title=title,
        genre=genre,
        characters=list(characters),
        is_complete=is_complete,
        is_favorite=is_favorite,
        created_at=_clock[0],
        updated_at=_clock[0],
    )
    segments: list[Segment] = []
    parent: uuid.UUID | None = None
    for position, text in enumerate(texts, start=1):
        segment = _segment(story.id, parent, position, text, on_path=True)
        segments.append(segment)
        parent = segment.id
    for text in off_path:
        last = segments[-1]
        segments.append(_segment(story.id, last.parent_id, last.position, text, on_path=False))
    story.head_segment_id = parent
    async with db.session_scope() as session:
        session.add(story)
        await session.flush()
        session.add_all(segments)
    return Written(str(story.id), [str(s.id) for s in segments])


def _segment(
    story_id: uuid.UUID, parent_id: uuid.UUID | None, position: int, text: str, *, on_path: bool
) -> Segment:
    return Segment(
        id=uuid.uuid4(),
        story_id=story_id,
        parent_id=parent_id,
        position=position,
        kind="opening" if position == 1 else "continuation",
        text=text,
        word_count=len(text.split()),
        on_path=on_path,
        provider="offline",
        model="offline-v1",
        is_language_model=False,
        generation_id=str(uuid.uuid4()),
        created_at=_clock[0],
    )


def new_user() -> str:
    return str(uuid.uuid4())


async def listing(stories: Stub, user_id: str, **fields) -> stories_pb2.ListStoriesResponse:
    return await stories.ListStories(stories_pb2.ListStoriesRequest(user_id=user_id, **fields))


async def every_page(stories: Stub, user_id: str, limit: int, **fields) -> list[list[str]]:
    pages, cursor = [], ""
    while True:
        page = await listing(stories, user_id, limit=limit, cursor=cursor, **fields)
        pages.append([item.id for item in page.items])
        if not page.next_cursor:
            return pages
        cursor = page.next_cursor


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return error.value


# --- Search --------------------------------------------------------------------


async def test_a_title_hit_outranks_the_same_word_in_a_story_and_a_third_segment_is_searched(
    stories: Stub, db: Database
):
    user_id = new_user()
    titled = await write_story(db, user_id, title="The Lighthouse Keeper", genre="mystery")
    told = await write_story(
        db,
        user_id,
        title="Salt and Iron",
        texts=(
            "The harbour woke late.",
            "Nobody spoke of the storm.",
            "At dusk Mara climbed to the lighthouse and found the quillwort growing there.",
        ),
    )
    await write_story(db, user_id, title="Unrelated", texts=("A quiet village fair.",))

    page = await listing(stories, user_id, query="lighthouse")

    assert [item.id for item in page.items] == [titled.story_id, told.story_id]
    title_hit, text_hit = (item.search for item in page.items)
    assert title_hit.rank > text_hit.rank > 0
    # The title's own words: no segment; the matched word between the markers.
    assert title_hit.segment_id == "" and "«Lighthouse»" in title_hit.snippet
    assert text_hit.segment_id == told.segment_ids[2]
    assert "«lighthouse»" in text_hit.snippet and "Mara" in text_hit.snippet
    # Results are whole list items, counted on the followed path.
    assert page.items[1].title == "Salt and Iron" and page.items[1].segment_count == 3
    assert page.next_cursor == ""

    # A word found only in the third segment, in another form (stemmed: english).
    [found] = (await listing(stories, user_id, query="quillworts")).items
    assert found.id == told.story_id and found.search.segment_id == told.segment_ids[2]
    # Websearch syntax: a phrase, and a word excluded.
    phrase = await listing(stories, user_id, query='"climbed to the lighthouse"')
    assert [item.id for item in phrase.items] == [told.story_id]
    excluded = await listing(stories, user_id, query="lighthouse -keeper")
    assert [item.id for item in excluded.items] == [told.story_id]


async def test_characters_and_genre_are_searched_and_texts_off_the_followed_path_are_not(
    stories: Stub, db: Database
):
    user_id = new_user()
    named = await write_story(db, user_id, characters=["Ottoline Vance"], genre="noir")
    branched = await write_story(
        db, user_id, texts=("One.", "Two plain words."), off_path=("A zeppelin over the bay.",)
    )

    [by_character] = (await listing(stories, user_id, query="ottoline")).items
    assert by_character.id == named.story_id and "«Ottoline»" in by_character.search.snippet
    [by_genre] = (await listing(stories, user_id, query="noir")).items
    assert by_genre.id == named.story_id
    # The alternative the story does not follow is not its text; its followed path is.
    assert list((await listing(stories, user_id, query="zeppelin")).items) == []
    [followed] = (await listing(stories, user_id, query="plain words")).items
    assert followed.id == branched.story_id
    assert followed.search.segment_id == branched.segment_ids[1]


async def test_another_users_stories_are_never_found_or_counted(stories: Stub, db: Database):
    mine, theirs = new_user(), new_user()
    await write_story(db, theirs, title="Marmalade Skies", texts=("Marmalade everywhere.",))
    own = await write_story(db, mine, title="Plain", texts=("Nothing sweet.",))

    assert list((await listing(stories, mine, query="marmalade")).items) == []
    assert [item.id for item in (await listing(stories, mine, genre="mystery")).items] == [
        own.story_id
    ]
    assert (await stories.GetStoryStats(stories_pb2.GetStoryStatsRequest(user_id=mine))).total == 1


async def test_a_query_of_stop_words_or_punctuation_finds_nothing_without_error(
    stories: Stub, db: Database
):
    user_id = new_user()
    await write_story(db, user_id, title="The Other One", texts=("It was the best of them.",))
    for query in ("the of and it was", "!!! ... ???", '"" - or'):
        page = await listing(stories, user_id, query=query)
        assert list(page.items) == [] and page.next_cursor == "", query


async def test_a_query_too_long_or_an_empty_genre_is_invalid(stories: Stub):
    user_id = new_user()
    too_long = await refused(listing(stories, user_id, query="word " * 41))
    assert too_long.code() == INVALID_ARGUMENT and "200" in too_long.details()
    empty_genre = await refused(listing(stories, user_id, genre="  "))
    assert empty_genre.code() == INVALID_ARGUMENT


# --- Filters ---------------------------------------------------------------------


async def test_filters_combine_with_each_other_with_a_query_and_with_the_newest_first_list(
    stories: Stub, db: Database
):
    user_id = new_user()
    done_fav = await write_story(
        db, user_id, genre="Mystery", is_complete=True, is_favorite=True, texts=("A fog came.",)
    )
    done = await write_story(db, user_id, genre="mystery", is_complete=True, texts=("Fog.",))
    open_fav = await write_story(db, user_id, genre="mystery", is_favorite=True)
    other_genre = await write_story(db, user_id, genre="romance", texts=("Fog and roses.",))

    async def ids(**fields) -> list[str]:
        return [item.id for item in (await listing(stories, user_id, **fields)).items]

    # Without a query: newest first, no search hit.
    assert await ids(genre="MYSTERY") == [open_fav.story_id, done.story_id, done_fav.story_id]
    assert await ids(is_complete=True) == [done.story_id, done_fav.story_id]
    assert await ids(is_complete=False) == [other_genre.story_id, open_fav.story_id]
    assert await ids(is_favorite=True) == [open_fav.story_id, done_fav.story_id]
    assert await ids(genre="mystery", is_complete=True, is_favorite=False) == [done.story_id]
    plain = await listing(stories, user_id, is_favorite=True)
    assert not any(item.HasField("search") for item in plain.items)
    # With a query: only matches that pass every filter.
    assert set(await ids(query="fog")) == {done_fav.story_id, done.story_id, other_genre.story_id}
    assert set(await ids(query="fog", genre="mystery")) == {done_fav.story_id, done.story_id}
    assert await ids(query="fog", genre="mystery", is_favorite=True) == [done_fav.story_id]
    assert await ids(query="fog", is_complete=False) == [other_genre.story_id]


# --- Cursors ---------------------------------------------------------------------


async def test_search_and_filtered_lists_page_through_every_match_once(
    stories: Stub, db: Database
):
    user_id = new_user()
    # Ranks differ by how often the word occurs; two pairs tie (told apart by id).
    written = [
        await write_story(db, user_id, texts=(" ".join(["ember"] * times) + " glowed.",))
        for times in (1, 2, 2, 3, 4, 4, 5)
    ]
    unmatched = await write_story(db, user_id, texts=("No match here.",))
    whole = [item.id for item in (await listing(stories, user_id, query="ember", limit=100)).items]
    assert sorted(whole) == sorted(w.story_id for w in written)
    ranks = [item.search.rank for item in (await listing(stories, user_id, query="ember")).items]
    assert ranks == sorted(ranks, reverse=True) and len(set(ranks)) < len(ranks)  # ties

    pages = await every_page(stories, user_id, limit=3, query="ember")
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [story_id for page in pages for story_id in page] == whole

    # A filtered list without a query pages newest first.
    pages = await every_page(stories, user_id, limit=3, genre="mystery", is_complete=False)
    assert [len(page) for page in pages] == [3, 3, 2]
    newest_first = [unmatched.story_id] + [w.story_id for w in reversed(written)]
    assert [story_id for page in pages for story_id in page] == newest_first


async def test_a_cursor_works_only_with_the_query_and_filters_it_was_made_with(
    stories: Stub, db: Database
):
    user_id = new_user()
    for _ in range(3):
        await write_story(db, user_id, texts=("Copper bells rang.",))
    searched = await listing(stories, user_id, query="copper", limit=1)
    filtered = await listing(stories, user_id, genre="mystery", limit=1)
    plain = await listing(stories, user_id, limit=1)
    assert searched.next_cursor and filtered.next_cursor and plain.next_cursor

    # The genre compares case-insensitively, so its case does not change the list.
    again = await listing(stories, user_id, query="copper", limit=1, cursor=searched.next_cursor)
    assert again.items[0].id != searched.items[0].id
    same_genre = await listing(
        stories, user_id, genre="MYSTERY", limit=1, cursor=filtered.next_cursor
    )
    assert same_genre.items[0].id != filtered.items[0].id

    misused = [
        dict(query="bells", cursor=searched.next_cursor),
        dict(query="copper", is_favorite=False, cursor=searched.next_cursor),
        dict(genre="romance", cursor=filtered.next_cursor),
        dict(query="copper", cursor=filtered.next_cursor),
        dict(query="copper", cursor=plain.next_cursor),
        dict(genre="mystery", cursor=plain.next_cursor),
        dict(cursor=searched.next_cursor),
        dict(query="copper", cursor="not-a-cursor"),
    ]
    for fields in misused:
        error = await refused(listing(stories, user_id, limit=1, **fields))
        assert error.code() == INVALID_ARGUMENT, fields


# --- Statistics ---------------------------------------------------------------------


async def test_statistics_count_stories_favourites_and_the_words_of_followed_paths(
    stories: Stub, db: Database
):
    user_id = new_user()
    empty = await stories.GetStoryStats(stories_pb2.GetStoryStatsRequest(user_id=user_id))
    assert (empty.total, empty.average_segments, empty.total_words, list(empty.genres)) == (
        0,
        0.0,
        0,
        [],
    )

    await write_story(
        db, user_id, genre="Mystery", texts=("one two three", "four five"), is_complete=True
    )
    await write_story(
        db, user_id, genre="mystery", texts=("six",), off_path=("not counted at all",),
        is_favorite=True,
    )
    await write_story(db, user_id, genre="mystery", texts=("a b", "c d", "e f"))
    await write_story(db, user_id, genre="romance", texts=("g h i j",), is_complete=True)
    await write_story(db, new_user(), texts=("someone else's words",))

    stats = await stories.GetStoryStats(stories_pb2.GetStoryStatsRequest(user_id=user_id))

    assert (stats.total, stats.completed, stats.favorites) == (4, 2, 1)
    # Followed paths of 2, 1, 3 and 1 segments; 5 + 1 + 6 + 4 words.
    assert stats.average_segments == pytest.approx(7 / 4)
    assert stats.total_words == 16
    genres = [(g.genre, g.total, g.completed, g.words) for g in stats.genres]
    # Most stories first; "Mystery" and "mystery" are one genre, under its usual spelling.
    assert genres == [("mystery", 3, 1, 12), ("romance", 1, 1, 4)]


# --- Sharing --------------------------------------------------------------------------


async def share(stories: Stub, user_id: str, story_id: str) -> stories_pb2.StoryShare:
    return await stories.ShareStory(stories_pb2.StoryRef(user_id=user_id, story_id=story_id))


async def read_shared(stories: Stub, token: str) -> stories_pb2.SharedStory:
    return await stories.GetSharedStory(stories_pb2.GetSharedStoryRequest(token=token))


async def test_a_shared_story_is_read_by_token_with_its_views_counted(
    stories: Stub, db: Database
):
    user_id = new_user()
    written = await write_story(
        db,
        user_id,
        title="The Ferry",
        characters=["Mara"],
        texts=("It began.", "It went on.", "It ended."),
        off_path=("Another ending.",),
        is_complete=True,
    )
    before = dt.datetime.now(dt.UTC)
    shared = await share(stories, user_id, written.story_id)
    assert shared.story_id == written.story_id and len(shared.token) >= 43
    assert shared.created_at.ToDatetime(dt.UTC) >= before - dt.timedelta(seconds=1)

    first = await read_shared(stories, shared.token)
    second = await read_shared(stories, shared.token)

    assert (first.view_count, second.view_count) == (1, 2)
    assert (second.title, second.genre, list(second.characters), second.is_complete) == (
        "The Ferry",
        "mystery",
        ["Mara"],
        True,
    )
    # The followed path only, in order; nothing about the owner in the message.
    assert [(s.position, s.text) for s in second.segments] == [
        (1, "It began."),
        (2, "It went on."),
        (3, "It ended."),
    ]
    assert second.segments[0].kind == stories_pb2.SEGMENT_KIND_OPENING
    assert user_id not in str(second) and written.story_id not in str(second)
    # Only the token's hash is stored.
    async with db.session_scope() as session:
        row = (
            await session.execute(
                select(StoryShare).where(StoryShare.story_id == uuid.UUID(written.story_id))
            )
        ).scalar_one()
    assert row.token_sha256 == hashlib.sha256(shared.token.encode()).hexdigest()
    assert row.view_count == 2 and row.last_viewed_at is not None


async def test_sharing_again_replaces_the_link_and_revoking_ends_it_at_once(
    stories: Stub, db: Database
):
    user_id = new_user()
    written = await write_story(db, user_id)
    ref = stories_pb2.StoryRef(user_id=user_id, story_id=written.story_id)
    old = await share(stories, user_id, written.story_id)
    await read_shared(stories, old.token)

    new = await share(stories, user_id, written.story_id)
    assert new.token != old.token
    assert (await refused(read_shared(stories, old.token))).code() == NOT_FOUND
    assert (await read_shared(stories, new.token)).view_count == 1  # the new link's views

    await stories.RevokeShare(ref)
    assert (await refused(read_shared(stories, new.token))).code() == NOT_FOUND
    assert (await refused(stories.RevokeShare(ref))).code() == NOT_FOUND


async def test_another_users_story_cannot_be_shared_or_revoked_and_bad_tokens_find_nothing(
    stories: Stub, db: Database
):
    owner, stranger = new_user(), new_user()
    written = await write_story(db, owner)
    shared = await share(stories, owner, written.story_id)

    for call in (stories.ShareStory, stories.RevokeShare):
        for story_id in (written.story_id, str(uuid.uuid4()), "not-a-uuid"):
            error = await refused(call(stories_pb2.StoryRef(user_id=stranger, story_id=story_id)))
            assert error.code() == NOT_FOUND, (call, story_id)
    # The stranger's attempts left the owner's link as it was.
    assert (await read_shared(stories, shared.token)).view_count == 1

    for token in ("", "short", shared.token[:-1] + ("A" if shared.token[-1] != "A" else "B"),
                  shared.token + "x", "%" * 43, hashlib.sha256(shared.token.encode()).hexdigest()):
        assert (await refused(read_shared(stories, token))).code() == NOT_FOUND, token


async def test_a_deleted_story_takes_its_link_with_it(stories: Stub, db: Database):
    user_id = new_user()
    written = await write_story(db, user_id)
    shared = await share(stories, user_id, written.story_id)
    await stories.DeleteStory(
        stories_pb2.DeleteStoryRequest(user_id=user_id, story_id=written.story_id)
    )
    assert (await refused(read_shared(stories, shared.token))).code() == NOT_FOUND
