"""Search and filters for ListStories, and statistics: input rules and cursors.

A search ranks by Postgres full-text search; a filtered list without a query
stays newest first. Either way the cursor is a keyset (the last item's sort
key) bound to the query and filters it was made with: used with others it is
INVALID_ARGUMENT rather than a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import struct
import uuid
from dataclasses import dataclass

from fabula_common.errors import InvalidArgument
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.discovery import repository
from fabula_stories.discovery.repository import Criteria, FoundStory, StoryStatistics
from fabula_stories.stories.models import GENRE_MAX_LENGTH

QUERY_MAX_LENGTH = 200

__all__ = ["Criteria", "FoundPage", "FoundStory", "StoryStatistics", "criteria", "find", "stats"]


def _text(name: str, value: str, max_length: int) -> str:
    value = value.strip()
    if len(value) > max_length:
        raise InvalidArgument(f"{name} must be at most {max_length} characters")
    if "\x00" in value:
        raise InvalidArgument(f"{name} must not contain NUL characters")
    return value


def criteria(
    *,
    query: str,
    genre: str | None,
    is_complete: bool | None,
    is_favorite: bool | None,
) -> Criteria | None:
    """The validated search and filters; None when there are neither (the
    plain newest-first list)."""
    query = _text("query", query, QUERY_MAX_LENGTH)
    if genre is not None:
        genre = _text("genre", genre, GENRE_MAX_LENGTH)
        if not genre:
            raise InvalidArgument("genre must not be empty")
    if not query and genre is None and is_complete is None and is_favorite is None:
        return None
    return Criteria(
        query=query or None, genre=genre, is_complete=is_complete, is_favorite=is_favorite
    )


# --- Cursors ---------------------------------------------------------------------
# base64url of: a kind byte, 8 bytes of the criteria's fingerprint, then the key
# of the previous page's last item: (rank as float4, id) for a search, (created_at
# in microseconds, id) for a filtered list. Neither is the 24 bytes of the plain
# list's cursor, so cursors of one listing are refused by the other.
_SEARCH_CURSOR = struct.Struct(">c8sf16s")
_LIST_CURSOR = struct.Struct(">c8sq16s")
_SEARCH, _LIST = b"s", b"l"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _fingerprint(found: Criteria) -> bytes:
    # Genre compares case-insensitively, so its case does not change the results.
    genre = found.genre.lower() if found.genre is not None else None
    normal = [found.query, genre, found.is_complete, found.is_favorite]
    return hashlib.sha256(json.dumps(normal).encode()).digest()[:8]


def encode_cursor(found: Criteria, last: FoundStory) -> str:
    if found.query is not None:
        assert last.hit is not None
        raw = _SEARCH_CURSOR.pack(_SEARCH, _fingerprint(found), last.hit.rank, last.story.id.bytes)
    else:
        micros = (last.story.created_at - _EPOCH) // dt.timedelta(microseconds=1)
        raw = _LIST_CURSOR.pack(_LIST, _fingerprint(found), micros, last.story.id.bytes)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(found: Criteria, cursor: str) -> tuple[float | dt.datetime, uuid.UUID] | None:
    """The sort key after which the page starts; None for the first page."""
    if not cursor:
        return None
    layout, kind = (_SEARCH_CURSOR, _SEARCH) if found.query is not None else (_LIST_CURSOR, _LIST)
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        cursor_kind, fingerprint, key, id_bytes = layout.unpack(raw)
    except (binascii.Error, ValueError, struct.error):
        raise InvalidArgument(
            "cursor is malformed or belongs to another query or filters"
        ) from None
    if cursor_kind != kind or fingerprint != _fingerprint(found):
        raise InvalidArgument("cursor belongs to another query or filters")
    if kind == _LIST:
        try:
            key = _EPOCH + dt.timedelta(microseconds=key)
        except OverflowError:
            raise InvalidArgument("cursor is malformed") from None
    return key, uuid.UUID(bytes=id_bytes)


@dataclass(frozen=True)
class FoundPage:
    items: list[FoundStory]
    next_cursor: str


async def find(
    session: AsyncSession, user_id: uuid.UUID, found: Criteria, limit: int, cursor: str
) -> FoundPage:
    """A page of the user's stories matching `found`: by rank for a query
    (each with its SearchHit), else newest first."""
    after = decode_cursor(found, cursor)
    # One row more than asked tells whether another page follows.
    if found.query is not None:
        rows = await repository.search(session, user_id, found, limit + 1, after)
    else:
        rows = await repository.filtered(session, user_id, found, limit + 1, after)
    items = rows[:limit]
    next_cursor = encode_cursor(found, items[-1]) if len(rows) > limit else ""
    return FoundPage(items=items, next_cursor=next_cursor)


async def stats(session: AsyncSession, user_id: uuid.UUID) -> StoryStatistics:
    return await repository.statistics(session, user_id)
