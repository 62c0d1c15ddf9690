"""Pictures rows -> fabula.stories.v1 messages."""

from __future__ import annotations

import datetime as dt

from fabula.stories.v1 import pictures_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from fabula_stories.pictures.models import PictureStory, Tutorial
from fabula_stories.pictures.service import DrawingView


def _ts(moment: dt.datetime) -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromDatetime(moment)
    return timestamp


def tutorial_to_proto(tutorial: Tutorial) -> pictures_pb2.Tutorial:
    return pictures_pb2.Tutorial(
        id=str(tutorial.id),
        category=tutorial.category,
        title=pictures_pb2.LocalizedText(en=tutorial.title_en, de=tutorial.title_de),
        description=pictures_pb2.LocalizedText(
            en=tutorial.description_en, de=tutorial.description_de
        ),
        thumbnail_url=tutorial.thumbnail_url,
        steps=[
            pictures_pb2.TutorialStep(
                step_number=step["step_number"],
                instruction=pictures_pb2.LocalizedText(
                    en=step["instruction_en"], de=step["instruction_de"]
                ),
                image_url=step["image_url"],
            )
            for step in tutorial.steps
        ],
        total_steps=len(tutorial.steps),
        created_at=_ts(tutorial.created_at),
        updated_at=_ts(tutorial.updated_at),
    )


def drawing_to_proto(view: DrawingView) -> pictures_pb2.Drawing:
    drawing = view.drawing
    return pictures_pb2.Drawing(
        id=str(drawing.id),
        user_id=str(drawing.user_id),
        photo_id=drawing.photo_id,
        tutorial_id=str(drawing.tutorial_id) if drawing.tutorial_id else "",
        edits=[
            pictures_pb2.DrawingVersion(
                id=str(edit.id),
                photo_id=edit.photo_id,
                version=edit.version,
                created_at=_ts(edit.created_at),
            )
            for edit in view.edits
        ],
        photo_available=drawing.photo_available,
        picture_story_count=view.story_count,
        created_at=_ts(drawing.created_at),
        updated_at=_ts(drawing.updated_at),
    )


def picture_story_to_proto(story: PictureStory) -> pictures_pb2.PictureStory:
    moderation = story.moderation or {}
    return pictures_pb2.PictureStory(
        id=str(story.id),
        user_id=str(story.user_id),
        drawing_id=str(story.drawing_id),
        photo_id=story.photo_id,
        title=pictures_pb2.LocalizedText(en=story.title_en, de=story.title_de),
        text=pictures_pb2.LocalizedText(en=story.text_en, de=story.text_de),
        direction=story.direction,
        generation_time_ms=story.generation_time_ms,
        is_favorite=story.is_favorite,
        moderation=pictures_pb2.ModerationResult(
            checked=bool(moderation.get("checked")),
            checker=moderation.get("checker", ""),
            flagged=bool(moderation.get("flagged")),
            categories=list(moderation.get("categories", [])),
        ),
        provider=story.provider,
        model=story.model,
        is_language_model=story.is_language_model,
        created_at=_ts(story.created_at),
        updated_at=_ts(story.updated_at),
    )
