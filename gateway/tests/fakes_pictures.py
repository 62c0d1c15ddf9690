"""Fakes of stories' TutorialsService and DrawingsService for the gateway's
tests: canned answers derived from the request, every call recorded
(fakes.Recorder). One tutorial, drawing and picture story exist for whoever asks."""

from __future__ import annotations

from fabula.stories.v1 import pictures_pb2, pictures_pb2_grpc
from google.protobuf import empty_pb2

TUTORIAL_ID = "6f1c2d1e-0001-4000-8000-000000000001"
DRAWING_ID = "0d1e2f3a-4b5c-4d6e-8f7a-8b9c0d1e2f3a"
STORY_ID = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
PHOTO_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def _ts():
    from .fakes import CREATED_AT, timestamp

    return timestamp(CREATED_AT)


def text(en: str, de: str) -> pictures_pb2.LocalizedText:
    return pictures_pb2.LocalizedText(en=en, de=de)


def tutorial(category: str = "animals", **fields) -> pictures_pb2.Tutorial:
    steps = [
        pictures_pb2.TutorialStep(
            step_number=1,
            instruction=text("Draw a big circle.", "Zeichne einen großen Kreis."),
            image_url="https://fabula.dev/tutorials/cat/step-1.png",
        ),
        pictures_pb2.TutorialStep(
            step_number=2,
            instruction=text("Add two ears.", "Füge zwei Ohren hinzu."),
            image_url="https://fabula.dev/tutorials/cat/step-2.png",
        ),
    ]
    message = pictures_pb2.Tutorial(
        id=TUTORIAL_ID,
        category=category,
        title=text("A Sitting Cat", "Eine sitzende Katze"),
        description=text("A friendly cat.", "Eine freundliche Katze."),
        thumbnail_url="https://fabula.dev/tutorials/cat/thumbnail.png",
        steps=steps,
        total_steps=len(steps),
        created_at=_ts(),
        updated_at=_ts(),
    )
    for name, value in fields.items():
        if isinstance(value, pictures_pb2.LocalizedText):
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def drawing(user_id: str, photo_id: str = PHOTO_ID, edits=()) -> pictures_pb2.Drawing:
    return pictures_pb2.Drawing(
        id=DRAWING_ID,
        user_id=user_id,
        photo_id=photo_id,
        edits=list(edits),
        photo_available=True,
        created_at=_ts(),
        updated_at=_ts(),
    )


def picture_story(user_id: str, is_favorite: bool = False, direction: str = "") -> pictures_pb2.PictureStory:
    return pictures_pb2.PictureStory(
        id=STORY_ID,
        user_id=user_id,
        drawing_id=DRAWING_ID,
        photo_id=PHOTO_ID,
        title=text("The Red Adventure", "Das Abenteuer in Rot"),
        text=text("Once upon a time...", "Es war einmal..."),
        direction=direction,
        generation_time_ms=12,
        is_favorite=is_favorite,
        moderation=pictures_pb2.ModerationResult(checked=True, checker="offline-wordlist"),
        provider="offline",
        model="offline-v1",
        is_language_model=False,
        created_at=_ts(),
        updated_at=_ts(),
    )


class FakeTutorials(pictures_pb2_grpc.TutorialsServiceServicer):
    def __init__(self, recorder) -> None:
        self.recorder = recorder

    async def ListTutorials(self, request, context):
        await self.recorder.receive("ListTutorials", request, context)
        return pictures_pb2.ListTutorialsResponse(tutorials=[tutorial(request.category or "animals")])

    async def GetTutorial(self, request, context):
        await self.recorder.receive("GetTutorial", request, context)
        return tutorial()

    async def CreateTutorial(self, request, context):
        await self.recorder.receive("CreateTutorial", request, context)
        return tutorial(request.tutorial.category, title=request.tutorial.title)

    async def UpdateTutorial(self, request, context):
        await self.recorder.receive("UpdateTutorial", request, context)
        return tutorial(title=request.tutorial.title)


class FakeDrawings(pictures_pb2_grpc.DrawingsServiceServicer):
    def __init__(self, recorder) -> None:
        self.recorder = recorder

    async def CreateDrawing(self, request, context):
        await self.recorder.receive("CreateDrawing", request, context)
        return drawing(request.user_id, request.photo_id)

    async def ListDrawings(self, request, context):
        await self.recorder.receive("ListDrawings", request, context)
        return pictures_pb2.ListDrawingsResponse(
            drawings=[drawing(request.user_id)], next_cursor="" if request.cursor == "next" else "next"
        )

    async def GetDrawing(self, request, context):
        await self.recorder.receive("GetDrawing", request, context)
        return drawing(request.user_id)

    async def DeleteDrawing(self, request, context):
        await self.recorder.receive("DeleteDrawing", request, context)
        return empty_pb2.Empty()

    async def AddDrawingEdit(self, request, context):
        await self.recorder.receive("AddDrawingEdit", request, context)
        edit = pictures_pb2.DrawingVersion(
            id="e0000000-0000-4000-8000-000000000001", photo_id=request.photo_id, version=1, created_at=_ts()
        )
        return drawing(request.user_id, edits=[edit])

    async def WritePictureStory(self, request, context):
        await self.recorder.receive("WritePictureStory", request, context)
        return picture_story(request.user_id, direction=request.direction)

    async def ListPictureStories(self, request, context):
        await self.recorder.receive("ListPictureStories", request, context)
        return pictures_pb2.ListPictureStoriesResponse(
            picture_stories=[picture_story(request.user_id, is_favorite=request.favorite_only)]
        )

    async def GetPictureStory(self, request, context):
        await self.recorder.receive("GetPictureStory", request, context)
        return picture_story(request.user_id)

    async def UpdatePictureStory(self, request, context):
        await self.recorder.receive("UpdatePictureStory", request, context)
        return picture_story(request.user_id, is_favorite=request.is_favorite)

    async def DeletePictureStory(self, request, context):
        await self.recorder.receive("DeletePictureStory", request, context)
        return empty_pb2.Empty()
