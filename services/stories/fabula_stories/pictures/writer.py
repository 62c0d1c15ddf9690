"""Writing a picture story: the drawing's newest image read from media, the
generation claimed (a pending_generations row, as a story segment's), one
call to generation's PicturesService under DELIVERY_CONFIRMED_BY_OWNER, then
the story stored with GenerationDelivered in one transaction, or the
generation discarded. The claim is renewed, the work detached from the
caller and a failure discarded by the StoryWriter's own machinery
(`write_claimed`), so a caller that goes away cancels nothing and a writer
that dies leaves its claim to the ClaimSweeper."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc
from fabula.generation.v1 import generation_pb2
from fabula.generation.v1 import pictures_pb2 as generation_pictures
from fabula.generation.v1 import pictures_pb2_grpc as generation_pictures_grpc
from fabula_common.db import Database
from fabula_common.errors import NotFound, from_rpc_error

from fabula_stories.pictures import service
from fabula_stories.pictures.media import Media
from fabula_stories.pictures.models import PictureStory
from fabula_stories.settings import Settings
from fabula_stories.stories.events import DeliverySubjects
from fabula_stories.stories.writer import StoryWriter


@dataclass(frozen=True)
class _PictureClaim:
    """What the StoryWriter reads of a claim to renew or discard it: the
    generation, whose it is, and its subject (the drawing; no story's write
    lease is held, so freeing one is a no-op)."""

    generation_id: uuid.UUID
    user_id: uuid.UUID
    story_id: uuid.UUID


class PictureStoryWriter:
    def __init__(
        self,
        db: Database,
        media: Media,
        pictures: generation_pictures_grpc.PicturesServiceStub,
        stories: StoryWriter,
        settings: Settings,
    ) -> None:
        self._db = db
        self._media = media
        self._pictures = pictures
        self._stories = stories
        self._settings = settings
        self._subjects = DeliverySubjects.for_settings(settings)

    async def write(self, user_id: uuid.UUID, drawing_id: uuid.UUID, direction: str) -> PictureStory:
        direction = service.validate_direction(direction)
        async with self._db.session_scope() as session:
            view = await service.drawing_view(session, user_id, drawing_id)
        if not view.drawing.photo_available:
            raise NotFound("the drawing's photo was deleted; a story needs its image")
        photo_id = view.newest_photo_id
        image = await self._media.read_image(str(user_id), photo_id)
        claim = _PictureClaim(uuid.uuid4(), user_id, drawing_id)
        async with self._db.session_scope() as session:
            await service.claim_generation(
                session,
                user_id,
                drawing_id,
                claim.generation_id,
                self._settings.write_lease_seconds,
                self._settings.instance_name,
            )
        request = generation_pictures.PictureStoryRequest(
            user_id=str(user_id),
            subject=generation_pb2.SubjectRef(kind="drawing", id=str(drawing_id)),
            generation_id=str(claim.generation_id),
            delivery=generation_pb2.DELIVERY_CONFIRMED_BY_OWNER,
            image=image.data,
            image_content_type=image.content_type,
            direction=direction,
        )
        story = await self._stories.write_claimed(
            claim,  # type: ignore[arg-type]  # read as a WriteClaim
            self._generate(claim.generation_id, photo_id, direction, request),
            f"picture story of drawing {drawing_id}",
        )
        if story is None:
            raise NotFound("drawing not found")
        return story

    async def _generate(
        self,
        generation_id: uuid.UUID,
        photo_id: str,
        direction: str,
        request: generation_pictures.PictureStoryRequest,
    ) -> PictureStory | None:
        try:
            answer = await self._pictures.WritePictureStory(
                request, timeout=self._settings.generation_deadline_seconds
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from err
        async with self._db.session_scope() as session:
            return await service.store_picture_story(
                session, self._subjects, generation_id, photo_id, direction, answer
            )
