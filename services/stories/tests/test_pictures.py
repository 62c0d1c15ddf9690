"""Tutorials, drawings and picture stories (TutorialsService, DrawingsService)
over real gRPC, Postgres and NATS.

Media's MediaService and generation's PicturesService are played by small
doubles speaking their contracts (protos/fabula/media/v1/media.proto,
protos/fabula/generation/v1/pictures.proto): media is built at the same time
on another branch. The end-to-end tests use the real generation."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import nats
import pytest
from fabula.common.v1 import money_pb2
from fabula.generation.v1 import generation_pb2, pictures_pb2_grpc as generation_pictures_grpc
from fabula.generation.v1 import pictures_pb2 as generation_pictures
from fabula.media.v1 import events_pb2 as media_events
from fabula.media.v1 import media_pb2, media_pb2_grpc
from fabula.stories.v1 import events_pb2, pictures_pb2, pictures_pb2_grpc
from fabula_common.db import Database
from fabula_common.errors import ContentBlocked, NotFound, error_details
from fabula_common.messaging.bus import EventBus, subject_for
from fabula_common.messaging.headers import MSG_ID_HEADER
from fabula_common.settings import CommonSettings
from fabula_common.testing import free_port, running_app
from fabula_stories.app import create_app
from fabula_stories.pictures.models import PictureStory
from fabula_stories.settings import Settings
from fabula_stories.stories.events import DeliverySubjects
from fabula_stories.stories.models import PendingGeneration
from sqlalchemy import func, select

IMAGE = b"\x89PNG\r\n\x1a\n-a-processed-rendition-"


class MediaDouble(media_pb2_grpc.MediaServiceServicer):
    """Photos by (user, id) with a status; another user's is NOT_FOUND, as media answers."""

    def __init__(self) -> None:
        self.photos: dict[tuple[str, str], int] = {}
        self.reads: list[media_pb2.ReadPhotoRequest] = []

    def add(self, user_id: str, status: int = media_pb2.PHOTO_STATUS_COMPLETED) -> str:
        photo_id = str(uuid.uuid4())
        self.photos[user_id, photo_id] = status
        return photo_id

    async def _abort_missing(self, context) -> None:
        status = NotFound("photo not found").to_status()
        await context.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)

    async def GetPhoto(self, request, context):
        status = self.photos.get((request.user_id, request.photo_id))
        if status is None:
            await self._abort_missing(context)
        return media_pb2.Photo(id=request.photo_id, user_id=request.user_id, status=status)

    async def ReadPhoto(self, request, context):
        self.reads.append(request)
        if (request.user_id, request.photo_id) not in self.photos:
            await self._abort_missing(context)
        return media_pb2.ReadPhotoResponse(
            data=IMAGE + request.photo_id.encode(), content_type="image/webp", width=64, height=48
        )


class PicturesDouble(generation_pictures_grpc.PicturesServiceServicer):
    def __init__(self) -> None:
        self.requests: list[generation_pictures.PictureStoryRequest] = []
        self.block: str = ""

    async def WritePictureStory(self, request, context):
        self.requests.append(request)
        if self.block:
            status = ContentBlocked(self.block, "offline-wordlist", ["violence"]).to_status()
            await context.abort(
                status.code, status.details, trailing_metadata=status.trailing_metadata
            )
        return generation_pictures.PictureStoryResponse(
            generation_id=request.generation_id,
            title_en="The Red Fox",
            text_en="A red fox ran across the page.",
            title_de="Der rote Fuchs",
            text_de="Ein roter Fuchs lief über das Blatt.",
            provider="offline",
            model="offline-v1",
            is_language_model=False,
            usage=generation_pb2.Usage(
                prompt_tokens=10,
                completion_tokens=20,
                cost=money_pb2.Money(currency_code="USD"),
            ),
            moderation=generation_pictures.PictureModeration(
                checked=True, checker="offline-wordlist"
            ),
            duration_ms=42,
        )


@pytest.fixture(scope="module")
async def peers() -> AsyncIterator[tuple[MediaDouble, PicturesDouble, str, str]]:
    media, pictures = MediaDouble(), PicturesDouble()
    servers = []
    addresses = []
    for add, double in (
        (media_pb2_grpc.add_MediaServiceServicer_to_server, media),
        (generation_pictures_grpc.add_PicturesServiceServicer_to_server, pictures),
    ):
        server = grpc.aio.server()
        add(double, server)
        port = free_port()
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        servers.append(server)
        addresses.append(f"127.0.0.1:{port}")
    yield media, pictures, addresses[0], addresses[1]
    for server in servers:
        await server.stop(None)


@pytest.fixture
def media(peers) -> MediaDouble:
    return peers[0]


@pytest.fixture
def generation(peers) -> PicturesDouble:
    peers[1].block = ""
    return peers[1]


@pytest.fixture(scope="module")
def settings(test_database, test_stream, peers) -> Settings:
    return Settings(
        grpc_port=free_port(),
        media_addr=peers[2],
        generation_addr=peers[3],
        instance_name=f"stories-pictures-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture(scope="module")
async def channel(settings) -> AsyncIterator[grpc.aio.Channel]:
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield channel


@pytest.fixture
def tutorials(channel) -> pictures_pb2_grpc.TutorialsServiceStub:
    return pictures_pb2_grpc.TutorialsServiceStub(channel)


@pytest.fixture
def drawings(channel) -> pictures_pb2_grpc.DrawingsServiceStub:
    return pictures_pb2_grpc.DrawingsServiceStub(channel)


@pytest.fixture(scope="module")
async def db(test_database) -> AsyncIterator[Database]:
    database = Database(Settings())
    yield database
    await database.dispose()


class Published:
    def __init__(self) -> None:
        self.delivered: list[events_pb2.GenerationDelivered] = []
        self.discarded: list[events_pb2.GenerationDiscarded] = []


@pytest.fixture(scope="module")
async def published(test_stream) -> AsyncIterator[Published]:
    settings = CommonSettings()
    subjects = DeliverySubjects.for_settings(settings)
    bus = EventBus(settings, name="stories-pictures-tests")
    js = await bus.jetstream()
    collected = Published()

    async def collect(msg) -> None:
        if msg.subject == subjects.delivered:
            collected.delivered.append(events_pb2.GenerationDelivered.FromString(msg.data))
        elif msg.subject == subjects.discarded:
            collected.discarded.append(events_pb2.GenerationDiscarded.FromString(msg.data))

    subscription = await js.subscribe(
        f"{settings.nats_subject_prefix}.stories.>", cb=collect, ordered_consumer=True
    )
    yield collected
    await subscription.unsubscribe()
    await bus.close()


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def user() -> str:
    return str(uuid.uuid4())


def text(en: str, de: str) -> pictures_pb2.LocalizedText:
    return pictures_pb2.LocalizedText(en=en, de=de)


# --- Tutorials -------------------------------------------------------------------


async def test_the_starter_catalog_is_seeded_in_both_languages(tutorials):
    listed = await tutorials.ListTutorials(pictures_pb2.ListTutorialsRequest())
    assert {t.category for t in listed.tutorials} >= {"animals", "nature", "vehicles"}
    cat = next(t for t in listed.tutorials if t.title.en == "A Sitting Cat")
    assert cat.title.de == "Eine sitzende Katze"
    assert cat.total_steps == len(cat.steps) == 5
    assert [s.step_number for s in cat.steps] == [1, 2, 3, 4, 5]
    assert all(s.instruction.en and s.instruction.de and s.image_url for s in cat.steps)
    assert cat.thumbnail_url.startswith("https://")

    animals = await tutorials.ListTutorials(pictures_pb2.ListTutorialsRequest(category="animals"))
    assert {t.category for t in animals.tutorials} == {"animals"}
    got = await tutorials.GetTutorial(pictures_pb2.GetTutorialRequest(tutorial_id=cat.id))
    assert got == cat


async def test_tutorials_need_both_languages_and_are_edited_field_by_field(tutorials):
    fields = pictures_pb2.TutorialFields(
        category="Animals",
        title=text("A Fish", "Ein Fisch"),
        description=text("A simple fish.", "Ein einfacher Fisch."),
        steps=[
            pictures_pb2.TutorialStep(instruction=text("Draw an oval.", "Zeichne ein Oval.")),
            pictures_pb2.TutorialStep(
                instruction=text("Add a tail.", "Füge eine Schwanzflosse hinzu."),
                image_url="https://example.com/fish/2.png",
            ),
        ],
    )
    created = await tutorials.CreateTutorial(
        pictures_pb2.CreateTutorialRequest(user_id=user(), tutorial=fields)
    )
    assert created.category == "animals"
    assert [s.step_number for s in created.steps] == [1, 2]
    assert created.total_steps == 2

    missing_german = pictures_pb2.TutorialFields()
    missing_german.CopyFrom(fields)
    missing_german.steps[1].instruction.de = ""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tutorials.CreateTutorial(
            pictures_pb2.CreateTutorialRequest(user_id=user(), tutorial=missing_german)
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "steps[1].instruction.de" in refused.value.details()

    updated = await tutorials.UpdateTutorial(
        pictures_pb2.UpdateTutorialRequest(
            user_id=user(),
            tutorial_id=created.id,
            tutorial=pictures_pb2.TutorialFields(title=text("A Goldfish", "Ein Goldfisch")),
            fields=["title"],
        )
    )
    assert updated.title.de == "Ein Goldfisch"
    assert updated.description.en == "A simple fish."
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await tutorials.GetTutorial(pictures_pb2.GetTutorialRequest(tutorial_id=str(uuid.uuid4())))
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


# --- Drawings --------------------------------------------------------------------


async def test_a_drawing_is_recorded_from_the_users_completed_photo_only(drawings, media, tutorials):
    owner, other = user(), user()
    photo = media.add(owner)
    cat = (await tutorials.ListTutorials(pictures_pb2.ListTutorialsRequest(category="animals"))).tutorials[0]
    drawing = await drawings.CreateDrawing(
        pictures_pb2.CreateDrawingRequest(user_id=owner, photo_id=photo, tutorial_id=cat.id)
    )
    assert (drawing.photo_id, drawing.tutorial_id, drawing.photo_available) == (photo, cat.id, True)

    # Another user's photo is none at all; so is another user's drawing.
    with pytest.raises(grpc.aio.AioRpcError) as theirs:
        await drawings.CreateDrawing(pictures_pb2.CreateDrawingRequest(user_id=other, photo_id=photo))
    assert theirs.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as not_yours:
        await drawings.GetDrawing(pictures_pb2.DrawingRef(user_id=other, drawing_id=drawing.id))
    assert not_yours.value.code() is grpc.StatusCode.NOT_FOUND

    # A photo still processing cannot be drawn on yet.
    pending = media.add(owner, media_pb2.PHOTO_STATUS_PROCESSING)
    with pytest.raises(grpc.aio.AioRpcError) as not_ready:
        await drawings.CreateDrawing(pictures_pb2.CreateDrawingRequest(user_id=owner, photo_id=pending))
    assert not_ready.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(not_ready.value).reason == "photo-not-ready"


async def test_edits_are_versions_in_order_and_drawings_are_listed_and_deleted(drawings, media):
    owner = user()
    first = await drawings.CreateDrawing(
        pictures_pb2.CreateDrawingRequest(user_id=owner, photo_id=media.add(owner))
    )
    second = await drawings.CreateDrawing(
        pictures_pb2.CreateDrawingRequest(user_id=owner, photo_id=media.add(owner))
    )
    edit_photos = [media.add(owner), media.add(owner)]
    for photo in edit_photos:
        edited = await drawings.AddDrawingEdit(
            pictures_pb2.AddDrawingEditRequest(user_id=owner, drawing_id=first.id, photo_id=photo)
        )
    assert [(e.version, e.photo_id) for e in edited.edits] == [(1, edit_photos[0]), (2, edit_photos[1])]

    page = await drawings.ListDrawings(pictures_pb2.ListDrawingsRequest(user_id=owner, page_size=1))
    assert [d.id for d in page.drawings] == [second.id]
    rest = await drawings.ListDrawings(
        pictures_pb2.ListDrawingsRequest(user_id=owner, page_size=1, cursor=page.next_cursor)
    )
    assert [d.id for d in rest.drawings] == [first.id]
    assert len(rest.drawings[0].edits) == 2

    await drawings.DeleteDrawing(pictures_pb2.DrawingRef(user_id=owner, drawing_id=first.id))
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await drawings.GetDrawing(pictures_pb2.DrawingRef(user_id=owner, drawing_id=first.id))
    assert gone.value.code() is grpc.StatusCode.NOT_FOUND


# --- Picture stories ---------------------------------------------------------------


async def test_a_picture_story_is_written_about_the_newest_version_stored_and_delivered_once(
    drawings, media, generation, published, db
):
    owner = user()
    drawing = await drawings.CreateDrawing(
        pictures_pb2.CreateDrawingRequest(user_id=owner, photo_id=media.add(owner))
    )
    edit = media.add(owner)
    await drawings.AddDrawingEdit(
        pictures_pb2.AddDrawingEditRequest(user_id=owner, drawing_id=drawing.id, photo_id=edit)
    )
    story = await drawings.WritePictureStory(
        pictures_pb2.WritePictureStoryRequest(
            user_id=owner, drawing_id=drawing.id, direction="a fox who loves apples"
        )
    )
    sent = generation.requests[-1]
    # The model call gets the edited version's processed bytes, and counts only
    # when stories reports it stored.
    assert sent.image == IMAGE + edit.encode()
    assert sent.image_content_type == "image/webp"
    assert sent.delivery == generation_pb2.DELIVERY_CONFIRMED_BY_OWNER
    assert sent.generation_id == story.id
    assert (sent.subject.kind, sent.subject.id) == ("drawing", drawing.id)
    assert media.reads[-1].rendition == "thumb_1024"

    assert (story.title.en, story.title.de) == ("The Red Fox", "Der rote Fuchs")
    assert story.text.de.startswith("Ein roter Fuchs")
    assert (story.photo_id, story.generation_time_ms, story.is_favorite) == (edit, 42, False)
    assert story.moderation.checked and story.moderation.checker == "offline-wordlist"
    assert story.direction == "a fox who loves apples"

    await eventually(lambda: any(e.generation_id == story.id for e in published.delivered))
    assert [e.generation_id for e in published.delivered].count(story.id) == 1
    assert not [e for e in published.discarded if e.generation_id == story.id]
    async with db.session_scope() as session:
        assert not await session.get(PendingGeneration, uuid.UUID(story.id))

    counted = await drawings.GetDrawing(pictures_pb2.DrawingRef(user_id=owner, drawing_id=drawing.id))
    assert counted.picture_story_count == 1


async def test_picture_stories_are_favourited_listed_and_deleted_by_their_owner_only(
    drawings, media, generation
):
    owner, other = user(), user()
    drawing = await drawings.CreateDrawing(
        pictures_pb2.CreateDrawingRequest(user_id=owner, photo_id=media.add(owner))
    )
    ref = pictures_pb2.WritePictureStoryRequest(user_id=owner, drawing_id=drawing.id)
    first = await drawings.WritePictureStory(ref)
    second = await drawings.WritePictureStory(ref)

    liked = await drawings.UpdatePictureStory(
        pictures_pb2.UpdatePictureStoryRequest(user_id=owner, picture_story_id=first.id, is_favorite=True)
    )
    assert liked.is_favorite
    favourites = await drawings.ListPictureStories(
        pictures_pb2.ListPictureStoriesRequest(user_id=owner, favorite_only=True)
    )
    assert [s.id for s in favourites.picture_stories] == [first.id]
    everything = await drawings.ListPictureStories(pictures_pb2.ListPictureStoriesRequest(user_id=owner))
    assert [s.id for s in everything.picture_stories] == [second.id, first.id]

    for call in (
        drawings.GetPictureStory(pictures_pb2.PictureStoryRef(user_id=other, picture_story_id=first.id)),
        drawings.UpdatePictureStory(
            pictures_pb2.UpdatePictureStoryRequest(user_id=other, picture_story_id=first.id, is_favorite=False)
        ),
        drawings.DeletePictureStory(pictures_pb2.PictureStoryRef(user_id=other, picture_story_id=first.id)),
        drawings.WritePictureStory(pictures_pb2.WritePictureStoryRequest(user_id=other, drawing_id=drawing.id)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await call
        assert hidden.value.code() is grpc.StatusCode.NOT_FOUND

    await drawings.DeletePictureStory(pictures_pb2.PictureStoryRef(user_id=owner, picture_story_id=first.id))
    left = await drawings.ListPictureStories(pictures_pb2.ListPictureStoriesRequest(user_id=owner))
    assert [s.id for s in left.picture_stories] == [second.id]


async def test_a_blocked_story_is_relayed_as_content_blocked_and_its_generation_discarded(
    drawings, media, generation, published, db
):
    owner = user()
    drawing = await drawings.CreateDrawing(
        pictures_pb2.CreateDrawingRequest(user_id=owner, photo_id=media.add(owner))
    )
    generation.block = "story_de"
    with pytest.raises(grpc.aio.AioRpcError) as blocked:
        await drawings.WritePictureStory(
            pictures_pb2.WritePictureStoryRequest(user_id=owner, drawing_id=drawing.id)
        )
    assert blocked.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = error_details(blocked.value)
    assert details.reason == "content-blocked"
    assert details.metadata["part"] == "story_de"

    generation_id = generation.requests[-1].generation_id
    await eventually(lambda: any(e.generation_id == generation_id for e in published.discarded))
    assert not [e for e in published.delivered if e.generation_id == generation_id]
    async with db.session_scope() as session:
        stored = await session.scalar(
            select(func.count()).select_from(PictureStory).where(PictureStory.user_id == uuid.UUID(owner))
        )
    assert stored == 0


async def test_a_photo_media_deleted_leaves_the_drawing_without_an_image(
    drawings, media, settings
):
    owner = user()
    photo = media.add(owner)
    drawing = await drawings.CreateDrawing(pictures_pb2.CreateDrawingRequest(user_id=owner, photo_id=photo))
    nc = await nats.connect(settings.nats_url, connect_timeout=2)
    try:
        await nc.jetstream().publish(
            subject_for(settings, "media", "photo_deleted"),
            media_events.PhotoDeleted(
                event_id=str(uuid.uuid4()), photo_id=photo, user_id=owner
            ).SerializeToString(),
            headers={MSG_ID_HEADER: uuid.uuid4().hex},
        )
    finally:
        await nc.close()

    async def image_gone() -> bool:
        got = await drawings.GetDrawing(pictures_pb2.DrawingRef(user_id=owner, drawing_id=drawing.id))
        return not got.photo_available

    await eventually(image_gone)
    with pytest.raises(grpc.aio.AioRpcError) as no_image:
        await drawings.WritePictureStory(
            pictures_pb2.WritePictureStoryRequest(user_id=owner, drawing_id=drawing.id)
        )
    assert no_image.value.code() is grpc.StatusCode.NOT_FOUND
