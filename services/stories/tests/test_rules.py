"""Input rules and the pure helpers behind them (no database, no network)."""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest
from fabula_common.errors import InvalidArgument, NotFound
from fabula_stories.stories import service

USER = str(uuid.uuid4())


def new_story(**overrides):
    fields = {
        "user_id": USER,
        "genre": "mystery",
        "title": None,
        "characters": [],
        "opening_line": None,
    }
    fields.update(overrides)
    return service.validate_new_story(**fields)


def test_a_story_request_is_trimmed_and_a_blank_title_asks_for_a_generated_one():
    story = new_story(
        genre="  noir ", title="   ", characters=[" Ada ", "Bo"], opening_line="  It rained. "
    )
    assert story.genre == "noir"
    assert story.title is None
    assert story.characters == ["Ada", "Bo"]
    assert story.opening_line == "It rained."
    assert story.user_id == uuid.UUID(USER)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"user_id": "not-a-uuid"}, "user_id"),
        ({"genre": "   "}, "genre"),
        ({"genre": "g" * 51}, "genre"),
        ({"title": "t" * 201}, "title"),
        ({"characters": ["c"] * 21}, "characters"),
        ({"characters": ["Ada", " "]}, "characters"),
        ({"characters": ["c" * 101]}, "characters"),
        ({"opening_line": "o" * 1001}, "opening_line"),
        ({"title": "nul\x00"}, "title"),
    ],
)
def test_an_invalid_story_request_names_the_field(overrides, field):
    with pytest.raises(InvalidArgument, match=field):
        new_story(**overrides)


def test_limits_are_inclusive():
    story = new_story(
        genre="g" * 50, title="t" * 200, characters=["c" * 100] * 20, opening_line="o" * 1000
    )
    assert len(story.characters) == 20


def test_direction_is_bounded():
    assert service.validate_direction(None) == ""
    assert service.validate_direction(" d ") == "d"
    assert service.validate_direction("d" * 4000) == "d" * 4000
    with pytest.raises(InvalidArgument, match="direction"):
        service.validate_direction("d" * 4001)


def test_a_malformed_story_id_is_not_found():
    with pytest.raises(NotFound):
        service.parse_story_id("42")


@pytest.mark.parametrize(("limit", "size"), [(0, 20), (1, 1), (100, 100)])
def test_page_size(limit, size):
    assert service.page_size(limit) == size


@pytest.mark.parametrize("limit", [-1, 101])
def test_a_page_size_out_of_range_is_invalid(limit):
    with pytest.raises(InvalidArgument, match="limit"):
        service.page_size(limit)


def test_a_cursor_round_trips_exactly():
    created_at = dt.datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)
    story_id = uuid.uuid4()
    cursor = service.encode_cursor(created_at, story_id)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor
    assert service.decode_cursor(cursor) == (created_at, story_id)
    assert service.decode_cursor("") is None


@pytest.mark.parametrize(
    "cursor",
    ["not a cursor", "abc", base64.urlsafe_b64encode(b"x" * 23).decode(), "é" * 32],
)
def test_a_malformed_cursor_is_invalid(cursor):
    with pytest.raises(InvalidArgument, match="cursor"):
        service.decode_cursor(cursor)


def test_a_title_falls_back_when_the_model_gives_none():
    assert service.title_for(new_story(genre="noir"), "  ") == "Untitled noir story"
    assert service.title_for(new_story(), " The Case ") == "The Case"
    assert service.title_for(new_story(title="Mine"), "Theirs") == "Mine"
    assert len(service.title_for(new_story(), "x" * 500)) == 200
