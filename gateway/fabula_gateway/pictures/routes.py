"""Drawing tutorials (a catalog in English and German), drawings recorded
from the user's photos, and bilingual picture stories about them (stories'
TutorialsService and DrawingsService; photos are media's)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, TypeVar

import grpc
from fabula.media.v1 import media_pb2
from fabula.stories.v1 import pictures_pb2
from fastapi import APIRouter, Body, Depends, Header, Path, Query, Response, status

from fabula_gateway.clients import ServiceClients
from fabula_gateway.dependencies import Clients, CurrentSuperuser, CurrentUserId, JsonBody
from fabula_gateway.mappers import to_datetime
from fabula_gateway.openapi import problem_responses
from fabula_gateway.pictures.mappers import (
    bilingual_tutorial_from_proto,
    drawing_from_proto,
    picture_story_from_proto,
    tutorial_from_proto,
)
from fabula_gateway.pictures.schemas import (
    BilingualTutorial,
    Drawing,
    DrawingCreate,
    DrawingEditCreate,
    DrawingPage,
    Language,
    PictureImage,
    PictureStory,
    PictureStoryCreate,
    PictureStoryPage,
    PictureStoryUpdate,
    StepInput,
    Tutorial,
    TutorialCreate,
    TutorialList,
    TutorialUpdate,
)
from fabula_gateway.projects.routes import Cursor, Limit, parse_uuid

log = logging.getLogger(__name__)
router = APIRouter(tags=["pictures"])

_S404_PHOTO = "No such drawing or tutorial of yours, or the photo is not yours."
_S409_PHOTO = "The photo is not processed yet (type `photo-not-ready`)."
_S422_STORY = (
    "The body is not valid; or, for a child-safe account, the moderation refused the "
    "direction or the story written for it (type `content-blocked`, with `part`: "
    "`direction`, `story_en` or `story_de`; a refused direction costs nothing)."
)
LANGUAGES: tuple[Language, ...] = ("en", "de")


def preferred_language(lang: str | None, accept_language: str | None) -> Language:
    """`lang` when given; else the first of en/de the Accept-Language header
    ranks highest (q values, then order); English when neither says."""
    if lang in LANGUAGES:
        return lang  # type: ignore[return-value]
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, *params = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        language = tag.split("-", 1)[0].lower()
        if language in LANGUAGES and weight > 0:
            ranked.append((-weight, index, language))
    return min(ranked)[2] if ranked else "en"  # type: ignore[return-value]


async def _language(
    lang: Annotated[
        Language | None, Query(description="`en` or `de`; else Accept-Language; else `en`.")
    ] = None,
    accept_language: Annotated[str | None, Header()] = None,
) -> Language:
    return preferred_language(lang, accept_language)


async def _tutorial_id(tutorial_id: Annotated[str, Path(description="A UUID.")]) -> str:
    return parse_uuid(tutorial_id, "Tutorial")


async def _drawing_id(drawing_id: Annotated[str, Path(description="A UUID.")]) -> str:
    return parse_uuid(drawing_id, "Drawing")


async def _picture_story_id(picture_story_id: Annotated[str, Path(description="A UUID.")]) -> str:
    return parse_uuid(picture_story_id, "Picture story")


PreferredLanguage = Annotated[Language, Depends(_language)]
TutorialId = Annotated[str, Depends(_tutorial_id)]
DrawingId = Annotated[str, Depends(_drawing_id)]
PictureStoryId = Annotated[str, Depends(_picture_story_id)]


def _steps(steps: list[StepInput]) -> list[pictures_pb2.TutorialStep]:
    return [
        pictures_pb2.TutorialStep(
            instruction=pictures_pb2.LocalizedText(en=step.instruction.en, de=step.instruction.de),
            image_url=step.image_url,
        )
        for step in steps
    ]


def _fields(body: TutorialCreate | TutorialUpdate) -> pictures_pb2.TutorialFields:
    fields = pictures_pb2.TutorialFields(
        category=body.category or "", thumbnail_url=body.thumbnail_url or ""
    )
    if body.title is not None:
        fields.title.CopyFrom(pictures_pb2.LocalizedText(en=body.title.en, de=body.title.de))
    if body.description is not None:
        fields.description.CopyFrom(
            pictures_pb2.LocalizedText(en=body.description.en, de=body.description.de)
        )
    if body.steps is not None:
        fields.steps.extend(_steps(body.steps))
    return fields


# --- Tutorials -------------------------------------------------------------------


# A picture's URLs are an extra to the story: a media service slower than
# this leaves `image` null rather than holding up the read.
IMAGE_LOOKUP_SECONDS = 2.0


def _shown_image(photo: media_pb2.Photo) -> PictureImage | None:
    """Display and thumbnail URLs of a processed photo; None before it is."""
    signed = {r.name: r for r in photo.renditions if r.url}
    if not signed or not photo.HasField("urls_expire_at"):
        return None
    thumbnails = sorted(
        (r for r in signed.values() if r.name != "original"), key=lambda r: max(r.width, r.height)
    )
    shown = [r for r in thumbnails if max(r.width, r.height) <= 1024]
    display = shown[-1] if shown else signed.get("original", thumbnails[-1] if thumbnails else None)
    if display is None:
        return None
    small = thumbnails[0] if thumbnails else display
    return PictureImage(
        url=display.url, thumbnail_url=small.url, expires_at=to_datetime(photo.urls_expire_at)
    )


Shown = TypeVar("Shown", Drawing, PictureStory)


def _shown_photo_id(item: Drawing | PictureStory) -> str | None:
    """The photo an item shows: a drawing's newest version, a story's own."""
    if isinstance(item, Drawing):
        if item.edits:
            return item.edits[-1].photo_id
        return item.photo_id if item.photo_available else None
    return item.photo_id


async def _with_images(clients: ServiceClients, user_id: str, items: list[Shown]) -> list[Shown]:
    """The items with their pictures' signed URLs (one GetPhoto per photo, at
    once); a photo media cannot give in time leaves the item's `image` null."""
    photo_ids = sorted({p for item in items if (p := _shown_photo_id(item))})
    answers = await asyncio.gather(
        *(
            clients.media.GetPhoto(
                media_pb2.PhotoRef(user_id=user_id, photo_id=photo_id),
                timeout=IMAGE_LOOKUP_SECONDS,
            )
            for photo_id in photo_ids
        ),
        return_exceptions=True,
    )
    images: dict[str, PictureImage | None] = {}
    for photo_id, answer in zip(photo_ids, answers, strict=True):
        if isinstance(answer, grpc.aio.AioRpcError):
            log.info("no image for photo %s: %s", photo_id, answer.code().name)
            continue
        if isinstance(answer, BaseException):
            raise answer
        images[photo_id] = _shown_image(answer)
    for item in items:
        item.image = images.get(_shown_photo_id(item) or "")
    return items


@router.get(
    "/v1/tutorials",
    operation_id="list_tutorials",
    response_model=TutorialList,
    response_model_exclude_none=True,
    summary="List drawing tutorials",
    description="In the language asked for (`lang`, else Accept-Language, else English), "
    "by category; `category` filters.",
    responses=problem_responses(401, 422, 500, 503),
)
async def list_tutorials(
    user_id: CurrentUserId,
    clients: Clients,
    lang: PreferredLanguage,
    category: Annotated[str | None, Query(max_length=50)] = None,
) -> TutorialList:
    reply = await clients.tutorials.ListTutorials(
        pictures_pb2.ListTutorialsRequest(category=category or "")
    )
    return TutorialList(
        items=[tutorial_from_proto(t, lang, with_steps=False) for t in reply.tutorials]
    )


@router.get(
    "/v1/tutorials/{tutorial_id}",
    operation_id="get_tutorial",
    response_model=Tutorial,
    summary="Get a tutorial with its steps",
    description="Steps in order (step_number, instruction, image_url) in the language asked for.",
    responses=problem_responses(401, 404, 500, 503),
)
async def get_tutorial(
    user_id: CurrentUserId, tutorial_id: TutorialId, clients: Clients, lang: PreferredLanguage
) -> Tutorial:
    tutorial = await clients.tutorials.GetTutorial(
        pictures_pb2.GetTutorialRequest(tutorial_id=tutorial_id)
    )
    return tutorial_from_proto(tutorial, lang, with_steps=True)


@router.post(
    "/v1/tutorials",
    operation_id="create_tutorial",
    status_code=status.HTTP_201_CREATED,
    response_model=BilingualTutorial,
    summary="Create a tutorial (superusers)",
    description="Title, description and every step's instruction in English and German.",
    responses=problem_responses(401, 403, 413, 415, 422, 500, 503),
)
async def create_tutorial(
    body: TutorialCreate, _json: JsonBody, admin: CurrentSuperuser, clients: Clients,
    response: Response,
) -> BilingualTutorial:
    tutorial = await clients.tutorials.CreateTutorial(
        pictures_pb2.CreateTutorialRequest(user_id=admin.user_id, tutorial=_fields(body))
    )
    response.headers["Location"] = f"/v1/tutorials/{tutorial.id}"
    return bilingual_tutorial_from_proto(tutorial)


@router.patch(
    "/v1/tutorials/{tutorial_id}",
    operation_id="update_tutorial",
    response_model=BilingualTutorial,
    summary="Change a tutorial (superusers)",
    description="Changes the fields sent (steps as a whole, both languages); the others stay.",
    responses=problem_responses(401, 403, 404, 413, 415, 422, 500, 503),
)
async def update_tutorial(
    body: TutorialUpdate,
    _json: JsonBody,
    admin: CurrentSuperuser,
    tutorial_id: TutorialId,
    clients: Clients,
) -> BilingualTutorial:
    tutorial = await clients.tutorials.UpdateTutorial(
        pictures_pb2.UpdateTutorialRequest(
            user_id=admin.user_id,
            tutorial_id=tutorial_id,
            tutorial=_fields(body),
            fields=sorted(name for name in body.model_fields_set if getattr(body, name) is not None),
        )
    )
    return bilingual_tutorial_from_proto(tutorial)


# --- Drawings --------------------------------------------------------------------


@router.post(
    "/v1/drawings",
    operation_id="create_drawing",
    status_code=status.HTTP_201_CREATED,
    response_model=Drawing,
    summary="Record a drawing",
    description="From a completed photo of yours, optionally following a tutorial.",
    responses=problem_responses(
        401, 404, 409, 413, 415, 422, 500, 503, s404=_S404_PHOTO, s409=_S409_PHOTO
    ),
)
async def create_drawing(
    body: DrawingCreate, _json: JsonBody, user_id: CurrentUserId, clients: Clients,
    response: Response,
) -> Drawing:
    tutorial_id = parse_uuid(body.tutorial_id, "Tutorial") if body.tutorial_id else ""
    drawing = await clients.drawings.CreateDrawing(
        pictures_pb2.CreateDrawingRequest(
            user_id=user_id, photo_id=body.photo_id, tutorial_id=tutorial_id
        )
    )
    response.headers["Location"] = f"/v1/drawings/{drawing.id}"
    (created,) = await _with_images(clients, user_id, [drawing_from_proto(drawing)])
    return created


@router.get(
    "/v1/drawings",
    operation_id="list_drawings",
    response_model=DrawingPage,
    summary="List drawings",
    description="Newest first, a page at a time.",
    responses=problem_responses(401, 422, 500, 503),
)
async def list_drawings(
    user_id: CurrentUserId, clients: Clients, limit: Limit = 20, cursor: Cursor = None
) -> DrawingPage:
    page = await clients.drawings.ListDrawings(
        pictures_pb2.ListDrawingsRequest(user_id=user_id, page_size=limit, cursor=cursor or "")
    )
    items = [drawing_from_proto(d) for d in page.drawings]
    return DrawingPage(
        items=await _with_images(clients, user_id, items), next_cursor=page.next_cursor or None
    )


@router.get(
    "/v1/drawings/{drawing_id}",
    operation_id="get_drawing",
    response_model=Drawing,
    summary="Get a drawing",
    description="With its edited versions, oldest first.",
    responses=problem_responses(401, 404, 500, 503),
)
async def get_drawing(user_id: CurrentUserId, drawing_id: DrawingId, clients: Clients) -> Drawing:
    drawing = await clients.drawings.GetDrawing(
        pictures_pb2.DrawingRef(user_id=user_id, drawing_id=drawing_id)
    )
    (found,) = await _with_images(clients, user_id, [drawing_from_proto(drawing)])
    return found


@router.delete(
    "/v1/drawings/{drawing_id}",
    operation_id="delete_drawing",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a drawing",
    description="With its edits and picture stories; the photos stay in /v1/photos.",
    responses=problem_responses(401, 404, 500, 503),
)
async def delete_drawing(user_id: CurrentUserId, drawing_id: DrawingId, clients: Clients) -> Response:
    await clients.drawings.DeleteDrawing(
        pictures_pb2.DrawingRef(user_id=user_id, drawing_id=drawing_id)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/v1/drawings/{drawing_id}/edits",
    operation_id="add_drawing_edit",
    status_code=status.HTTP_201_CREATED,
    response_model=Drawing,
    summary="Add an edited version",
    description="From another completed photo of yours; versions count up from 1.",
    responses=problem_responses(
        401, 404, 409, 413, 415, 422, 500, 503, s404=_S404_PHOTO, s409=_S409_PHOTO
    ),
)
async def add_drawing_edit(
    body: DrawingEditCreate,
    _json: JsonBody,
    user_id: CurrentUserId,
    drawing_id: DrawingId,
    clients: Clients,
) -> Drawing:
    drawing = await clients.drawings.AddDrawingEdit(
        pictures_pb2.AddDrawingEditRequest(
            user_id=user_id, drawing_id=drawing_id, photo_id=body.photo_id
        )
    )
    (edited,) = await _with_images(clients, user_id, [drawing_from_proto(drawing)])
    return edited


# --- Picture stories ---------------------------------------------------------------


@router.post(
    "/v1/drawings/{drawing_id}/stories",
    operation_id="create_picture_story",
    status_code=status.HTTP_201_CREATED,
    response_model=PictureStory,
    summary="Write a story about a drawing",
    description="A short story about the drawing's newest version, in English and German "
    "(one generation of the plan). A vision model looks at the image when one is "
    "configured; otherwise the offline generator (not a language model) writes from the "
    "image's main colours and shape.",
    responses=problem_responses(401, 402, 404, 413, 415, 422, 500, 503, s422=_S422_STORY),
)
async def create_picture_story(
    user_id: CurrentUserId,
    drawing_id: DrawingId,
    _json: JsonBody,
    clients: Clients,
    response: Response,
    body: Annotated[PictureStoryCreate | None, Body()] = None,
) -> PictureStory:
    story = await clients.drawings.WritePictureStory(
        pictures_pb2.WritePictureStoryRequest(
            user_id=user_id, drawing_id=drawing_id, direction=body.direction if body else ""
        ),
        timeout=clients.generation_timeout,
    )
    response.headers["Location"] = f"/v1/picture-stories/{story.id}"
    (written,) = await _with_images(clients, user_id, [picture_story_from_proto(story)])
    return written


@router.get(
    "/v1/picture-stories",
    operation_id="list_picture_stories",
    response_model=PictureStoryPage,
    summary="List picture stories",
    description="Newest first, a page at a time; `favorite=true` for favourites only, "
    "`drawing_id` for one drawing's.",
    responses=problem_responses(401, 404, 422, 500, 503),
)
async def list_picture_stories(
    user_id: CurrentUserId,
    clients: Clients,
    limit: Limit = 20,
    cursor: Cursor = None,
    favorite: bool = False,
    drawing_id: Annotated[str | None, Query()] = None,
) -> PictureStoryPage:
    page = await clients.drawings.ListPictureStories(
        pictures_pb2.ListPictureStoriesRequest(
            user_id=user_id,
            page_size=limit,
            cursor=cursor or "",
            favorite_only=favorite,
            drawing_id=parse_uuid(drawing_id, "Drawing") if drawing_id else "",
        )
    )
    items = [picture_story_from_proto(s) for s in page.picture_stories]
    return PictureStoryPage(
        items=await _with_images(clients, user_id, items), next_cursor=page.next_cursor or None
    )


@router.get(
    "/v1/picture-stories/{picture_story_id}",
    operation_id="get_picture_story",
    response_model=PictureStory,
    summary="Get a picture story",
    responses=problem_responses(401, 404, 500, 503),
)
async def get_picture_story(
    user_id: CurrentUserId, picture_story_id: PictureStoryId, clients: Clients
) -> PictureStory:
    story = await clients.drawings.GetPictureStory(
        pictures_pb2.PictureStoryRef(user_id=user_id, picture_story_id=picture_story_id)
    )
    (found,) = await _with_images(clients, user_id, [picture_story_from_proto(story)])
    return found


@router.patch(
    "/v1/picture-stories/{picture_story_id}",
    operation_id="update_picture_story",
    response_model=PictureStory,
    summary="Favourite a picture story",
    description='`{"is_favorite": true}` or false.',
    responses=problem_responses(401, 404, 413, 415, 422, 500, 503),
)
async def update_picture_story(
    body: PictureStoryUpdate,
    _json: JsonBody,
    user_id: CurrentUserId,
    picture_story_id: PictureStoryId,
    clients: Clients,
) -> PictureStory:
    story = await clients.drawings.UpdatePictureStory(
        pictures_pb2.UpdatePictureStoryRequest(
            user_id=user_id, picture_story_id=picture_story_id, is_favorite=body.is_favorite
        )
    )
    (updated,) = await _with_images(clients, user_id, [picture_story_from_proto(story)])
    return updated


@router.delete(
    "/v1/picture-stories/{picture_story_id}",
    operation_id="delete_picture_story",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a picture story",
    responses=problem_responses(401, 404, 500, 503),
)
async def delete_picture_story(
    user_id: CurrentUserId, picture_story_id: PictureStoryId, clients: Clients
) -> Response:
    await clients.drawings.DeletePictureStory(
        pictures_pb2.PictureStoryRef(user_id=user_id, picture_story_id=picture_story_id)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
