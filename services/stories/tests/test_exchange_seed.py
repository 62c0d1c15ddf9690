"""Reading the AI Story Generator's saved-story files (no services needed)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fabula_stories.exchange.seed import MalformedStory, import_request, read_story_file

SAMPLES = Path(__file__).resolve().parents[3] / "examples" / "saved_stories"
USER_ID = "6f1c2a8e-3b7d-4c59-9e0a-1d2f3a4b5c6d"


def story(**fields) -> dict:
    return {"id": "s1", "title": "T", "genre": "g", "segments": ["One."], **fields}


def test_every_sample_file_reads():
    requests = [
        read_story_file(path, user_id=USER_ID, source="ai-story-generator")
        for path in sorted(SAMPLES.glob("*.json"))
    ]
    assert len(requests) == 3
    assert {r.original_id for r in requests} >= {"42"}
    assert all(r.user_id == USER_ID and r.source == "ai-story-generator" for r in requests)


@pytest.mark.parametrize(
    "characters",
    [["Ann", "Bo"], '["Ann", "Bo"]', "Ann, Bo", " Ann ,Bo,, "],
)
def test_characters_come_as_a_list_json_text_or_commas(characters):
    request = import_request(story(characters=characters), user_id=USER_ID)
    assert list(request.characters) == ["Ann", "Bo"]


def test_segments_come_as_texts_or_objects_with_text_or_content():
    request = import_request(
        story(segments=["One.", {"text": "Two."}, {"content": "Three."}]), user_id=USER_ID
    )
    assert list(request.segments) == ["One.", "Two.", "Three."]


def test_times_without_an_offset_are_utc_and_others_are_converted():
    request = import_request(
        story(created_at="2024-03-02T21:14:05", updated_at="2024-07-30T19:45:00+02:00"),
        user_id=USER_ID,
    )
    utc = dt.UTC
    assert request.created_at.ToDatetime(utc) == dt.datetime(2024, 3, 2, 21, 14, 5, tzinfo=utc)
    assert request.updated_at.ToDatetime(utc) == dt.datetime(2024, 7, 30, 17, 45, tzinfo=utc)


def test_optional_fields_may_be_absent_or_null():
    request = import_request(
        story(characters=None, opening_line=None, created_at=None), user_id=USER_ID
    )
    assert list(request.characters) == []
    assert not request.HasField("opening_line")
    assert not request.HasField("created_at") and not request.HasField("updated_at")
    assert request.is_complete is False


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "not a JSON object"),
        ({"title": "T", "genre": "g"}, "missing id, segments"),
        (story(title=5), "title must be a string, not int"),
        (story(segments="not json"), "segments is not a valid JSON list"),
        (story(segments=[]), "segments is empty"),
        (story(segments=[{"words": "x"}]), 'segments[0] has no "text" or "content"'),
        (story(segments=["ok", 3]), "segments[1] must be a string, not int"),
        (story(characters=[1]), "characters[0] must be a string, not int"),
        (story(characters={"a": 1}), "characters must be a list or a string, not dict"),
        (story(is_complete="yes"), "is_complete must be true or false"),
        (story(created_at="yesterday"), "created_at is not an ISO 8601 time"),
        (story(id=True), "id must be a string or an integer"),
    ],
)
def test_a_malformed_story_says_what_is_wrong(document, reason):
    with pytest.raises(MalformedStory) as caught:
        import_request(document, user_id=USER_ID)
    assert str(caught.value).startswith(reason)


def test_a_file_that_is_not_json_says_so(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"id": 1, "title": ')
    with pytest.raises(MalformedStory, match="not valid JSON"):
        read_story_file(path, user_id=USER_ID, source="x")
    path.write_bytes(b"\xff\xfe" + json.dumps(story()).encode())
    with pytest.raises(MalformedStory, match="not UTF-8|not valid JSON"):
        read_story_file(path, user_id=USER_ID, source="x")
