"""Every table of the `stories` schema, the shared ones and each domain's, in one
metadata: Alembic and the migration test read it from here. A new domain adds
its models' import below."""

from __future__ import annotations

from fabula_stories.conversations.models import Conversation, ConversationMessage
from fabula_stories.database import Base, deleted_users, outbox, processed_events
from fabula_stories.idempotency.models import IdempotencyKey
from fabula_stories.pictures.models import Drawing, DrawingEdit, PictureStory, Tutorial
from fabula_stories.projects.models import Narrative, Project
from fabula_stories.stories.models import (
    LoreEntry,
    PendingGeneration,
    Segment,
    SegmentRevision,
    Story,
    StoryShare,
)

__all__ = [
    "Base",
    "Conversation",
    "ConversationMessage",
    "Drawing",
    "DrawingEdit",
    "IdempotencyKey",
    "LoreEntry",
    "Narrative",
    "PendingGeneration",
    "PictureStory",
    "Project",
    "Segment",
    "SegmentRevision",
    "Story",
    "StoryShare",
    "Tutorial",
    "deleted_users",
    "outbox",
    "processed_events",
]
