"""Reading the AI Story Generator's saved stories (its saved_stories/*.json).

Each file holds one row of its stories table: id, title, genre, characters,
opening_line, segments, is_complete, created_at, updated_at. The tool stored
some columns as text, so `characters` may be a list, a JSON-encoded list or a
comma-separated string, and `segments` a list of texts or of objects with a
"text" (or "content"); `is_complete` may be 0/1; timestamps are ISO 8601,
possibly without an offset (UTC). Only the shape is checked here; the stories
service checks the limits.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from fabula.stories.v1 import stories_pb2
from google.protobuf.timestamp_pb2 import Timestamp

DEFAULT_SOURCE = "ai-story-generator"
# Far above any story the service accepts; a bigger file is not read at all.
MAX_FILE_BYTES = 32 * 1024 * 1024
REQUIRED = ("id", "title", "genre", "segments")


class MalformedStory(ValueError):
    """The file is not what it should be (a saved story, or another
    importer's record); the message says why."""


def read_json_file(path: Path) -> Any:
    """The file's JSON document; MalformedStory when it is not one."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise MalformedStory(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        return json.loads(path.read_bytes())
    except UnicodeDecodeError:
        raise MalformedStory("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise MalformedStory(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_story_file(path: Path, *, user_id: str, source: str) -> stories_pb2.ImportStoryRequest:
    return import_request(read_json_file(path), user_id=user_id, source=source)


def import_request(
    document: Any, *, user_id: str, source: str = DEFAULT_SOURCE
) -> stories_pb2.ImportStoryRequest:
    if not isinstance(document, dict):
        raise MalformedStory("not a JSON object")
    missing = [name for name in REQUIRED if document.get(name) is None]
    if missing:
        raise MalformedStory(f"missing {', '.join(missing)}")
    request = stories_pb2.ImportStoryRequest(
        user_id=user_id,
        source=source,
        original_id=original_id(document["id"]),
        title=string_field("title", document["title"]),
        genre=string_field("genre", document["genre"]),
        characters=_characters(document.get("characters")),
        segments=_segments(document["segments"]),
        is_complete=flag_field("is_complete", document.get("is_complete", False)),
    )
    opening_line = document.get("opening_line")
    if opening_line is not None:
        request.opening_line = string_field("opening_line", opening_line)
    for name in ("created_at", "updated_at"):
        if document.get(name) is not None:
            getattr(request, name).CopyFrom(timestamp_field(name, document[name]))
    return request


def original_id(value: Any) -> str:
    # An integer primary key or a UUID, as the tool's table had it.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedStory("id must be a string or an integer")
    return str(value)


def string_field(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise MalformedStory(f"{name} must be a string, not {type_name(value)}")
    return value


def flag_field(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise MalformedStory(f"{name} must be true or false, not {value!r}")


def _strings(name: str, values: list) -> list[str]:
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise MalformedStory(f"{name}[{index}] must be a string, not {type_name(value)}")
    return values


def _characters(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise MalformedStory("characters is not a valid JSON list") from None
        else:
            return [name.strip() for name in text.split(",") if name.strip()]
    if not isinstance(value, list):
        raise MalformedStory(f"characters must be a list or a string, not {type_name(value)}")
    return [name.strip() for name in _strings("characters", value)]


def _segments(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise MalformedStory("segments is not a valid JSON list") from None
    if not isinstance(value, list):
        raise MalformedStory(f"segments must be a list, not {type_name(value)}")
    if not value:
        raise MalformedStory("segments is empty")
    texts = []
    for index, segment in enumerate(value):
        if isinstance(segment, dict):
            segment = segment.get("text", segment.get("content"))
            if segment is None:
                raise MalformedStory(f'segments[{index}] has no "text" or "content"')
        if not isinstance(segment, str):
            raise MalformedStory(f"segments[{index}] must be a string, not {type_name(segment)}")
        texts.append(segment)
    return texts


def timestamp_field(name: str, value: Any) -> Timestamp:
    if not isinstance(value, str):
        raise MalformedStory(f"{name} must be an ISO 8601 string, not {type_name(value)}")
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise MalformedStory(f"{name} is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    timestamp = Timestamp()
    timestamp.FromDatetime(moment)
    return timestamp


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__
