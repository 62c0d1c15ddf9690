"""Share links: tokens, their hashes, and who may share what.

The token is secrets.token_urlsafe(32): 256 random bits, 43 URL-safe
characters. Only its SHA-256 is stored, so the database (or a backup of it)
cannot open a shared story; the token itself is shown once, to the owner.
A story has one link at most: sharing again replaces it, and revoking
deletes it, so an old link finds nothing at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass

from fabula_common.errors import NotFound
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_stories.sharing import repository
from fabula_stories.sharing.repository import SharedStory

TOKEN_BYTES = 32
# What token_urlsafe(32) gives; anything else was never a token of ours.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")

__all__ = ["NewShare", "SharedStory", "read_shared", "revoke", "share"]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def share_not_found() -> NotFound:
    # The same answer for unknown, revoked and malformed tokens.
    return NotFound("shared story not found")


@dataclass(frozen=True)
class NewShare:
    story_id: uuid.UUID
    token: str  # shown once
    created_at: dt.datetime


async def share(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> NewShare:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    created_at = await repository.replace_share(session, user_id, story_id, token_hash(token))
    if created_at is None:
        raise NotFound("story not found")
    return NewShare(story_id=story_id, token=token, created_at=created_at)


async def revoke(session: AsyncSession, user_id: uuid.UUID, story_id: uuid.UUID) -> None:
    if not await repository.delete_share(session, user_id, story_id):
        raise NotFound("story not found or not shared")


async def read_shared(session: AsyncSession, token: str) -> SharedStory:
    """The shared story, its view counted."""
    if not _TOKEN.fullmatch(token):
        raise share_not_found()
    shared = await repository.view_shared(session, token_hash(token))
    if shared is None:
        raise share_not_found()
    return shared
