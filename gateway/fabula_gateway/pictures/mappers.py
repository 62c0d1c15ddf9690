"""fabula.stories.v1 pictures messages -> the public JSON shapes."""

from __future__ import annotations

from fabula.stories.v1 import pictures_pb2

from fabula_gateway.mappers import to_datetime
from fabula_gateway.pictures.schemas import (
    Bilingual,
    BilingualStep,
    BilingualTutorial,
    Drawing,
    DrawingVersion,
    Language,
    Moderation,
    PictureStory,
    Tutorial,
    TutorialStep,
)
from fabula_gateway.stories.schemas import GeneratedBy


def photo_url(photo_id: str) -> str:
    """Where a client gets the photo's time-limited download URLs (media)."""
    return f"/v1/photos/{photo_id}"


def _bilingual(text: pictures_pb2.LocalizedText) -> Bilingual:
    return Bilingual(en=text.en, de=text.de)


def tutorial_from_proto(
    tutorial: pictures_pb2.Tutorial, lang: Language, *, with_steps: bool
) -> Tutorial:
    def pick(text: pictures_pb2.LocalizedText) -> str:
        return text.de if lang == "de" else text.en

    return Tutorial(
        id=tutorial.id,
        category=tutorial.category,
        lang=lang,
        title=pick(tutorial.title),
        description=pick(tutorial.description),
        thumbnail_url=tutorial.thumbnail_url,
        total_steps=tutorial.total_steps,
        steps=[
            TutorialStep(
                step_number=step.step_number,
                instruction=pick(step.instruction),
                image_url=step.image_url,
            )
            for step in tutorial.steps
        ]
        if with_steps
        else None,
        created_at=to_datetime(tutorial.created_at),
        updated_at=to_datetime(tutorial.updated_at),
    )


def bilingual_tutorial_from_proto(tutorial: pictures_pb2.Tutorial) -> BilingualTutorial:
    return BilingualTutorial(
        id=tutorial.id,
        category=tutorial.category,
        title=_bilingual(tutorial.title),
        description=_bilingual(tutorial.description),
        thumbnail_url=tutorial.thumbnail_url,
        total_steps=tutorial.total_steps,
        steps=[
            BilingualStep(
                step_number=step.step_number,
                instruction=_bilingual(step.instruction),
                image_url=step.image_url,
            )
            for step in tutorial.steps
        ],
        created_at=to_datetime(tutorial.created_at),
        updated_at=to_datetime(tutorial.updated_at),
    )


def drawing_from_proto(drawing: pictures_pb2.Drawing) -> Drawing:
    return Drawing(
        id=drawing.id,
        photo_id=drawing.photo_id,
        tutorial_id=drawing.tutorial_id or None,
        image_url=photo_url(drawing.photo_id) if drawing.photo_available else None,
        photo_available=drawing.photo_available,
        edits=[
            DrawingVersion(
                id=edit.id,
                photo_id=edit.photo_id,
                version=edit.version,
                image_url=photo_url(edit.photo_id),
                created_at=to_datetime(edit.created_at),
            )
            for edit in drawing.edits
        ],
        picture_story_count=drawing.picture_story_count,
        created_at=to_datetime(drawing.created_at),
        updated_at=to_datetime(drawing.updated_at),
    )


def picture_story_from_proto(story: pictures_pb2.PictureStory) -> PictureStory:
    return PictureStory(
        id=story.id,
        drawing_id=story.drawing_id,
        photo_id=story.photo_id,
        image_url=photo_url(story.photo_id),
        title=_bilingual(story.title),
        text=_bilingual(story.text),
        direction=story.direction,
        generation_time_ms=story.generation_time_ms,
        is_favorite=story.is_favorite,
        moderation=Moderation(
            checked=story.moderation.checked,
            checker=story.moderation.checker,
            flagged=story.moderation.flagged,
            categories=list(story.moderation.categories),
        ),
        generated_by=GeneratedBy(
            provider=story.provider, model=story.model, is_language_model=story.is_language_model
        ),
        created_at=to_datetime(story.created_at),
        updated_at=to_datetime(story.updated_at),
    )
