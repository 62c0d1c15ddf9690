"""Writing a picture story: the drawing's newest image read from media, the
generation claimed (a pending_generations row, as a story segment's), one
call to generation's PicturesService under DELIVERY_CONFIRMED_BY_OWNER, then
the story stored with GenerationDelivered in one transaction, or the
generation discarded. The work runs in a task of its own, so a caller that
goes away cancels nothing: the story is stored (and counted once) anyway. A
writer that dies leaves its claim to the ClaimSweeper (GenerationDiscarded)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from typing import Any

import grpc
from fabula.generation.v1 import generation_pb2
from fabula.generation.v1 import pictures_pb2 as generation_pictures
from fabula.generation.v1 import pictures_pb2_grpc as generation_pictures_grpc
from fabula_common.db import Database
from fabula_common.errors import FabulaError, NotFound, from_rpc_error

from fabula_stories.pictures import service
from fabula_stories.pictures.media import Media
from fabula_stories.pictures.models import PictureStory
from fabula_stories.settings import Settings
from fabula_stories.stories import events
from fabula_stories.stories.events import DeliverySubjects
from fabula_stories.stories.repository import renew_claim

log = logging.getLogger(__name__)

_RENEW_RETRY_SECONDS = 0.5


class PictureStoryWriter:
    def __init__(
        self,
        db: Database,
        media: Media,
        pictures: generation_pictures_grpc.PicturesServiceStub,
        settings: Settings,
    ) -> None:
        self._db = db
        self._media = media
        self._pictures = pictures
        self._settings = settings
        self._subjects = DeliverySubjects.for_settings(settings)
        # Strong references: the event loop keeps only weak ones to tasks.
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = asyncio.Event()

    async def write(self, user_id: uuid.UUID, drawing_id: uuid.UUID, direction: str) -> PictureStory:
        direction = service.validate_direction(direction)
        async with self._db.session_scope() as session:
            view = await service.drawing_view(session, user_id, drawing_id)
        if not view.drawing.photo_available:
            raise NotFound("the drawing's photo was deleted; a story needs its image")
        photo_id = view.newest_photo_id
        image = await self._media.read_image(str(user_id), photo_id)
        generation_id = uuid.uuid4()
        async with self._db.session_scope() as session:
            await service.claim_generation(
                session,
                user_id,
                drawing_id,
                generation_id,
                self._settings.write_lease_seconds,
                self._settings.instance_name,
            )
        request = generation_pictures.PictureStoryRequest(
            user_id=str(user_id),
            subject=generation_pb2.SubjectRef(kind="drawing", id=str(drawing_id)),
            generation_id=str(generation_id),
            delivery=generation_pb2.DELIVERY_CONFIRMED_BY_OWNER,
            image=image.data,
            image_content_type=image.content_type,
            direction=direction,
        )
        # The task inherits this call's context: request id, deadline, child-safe mark.
        task = asyncio.create_task(self._generate(generation_id, photo_id, direction, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        story = await asyncio.shield(task)
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
        stopped = asyncio.Event()
        renewing = asyncio.create_task(self._renew(generation_id, stopped))
        try:
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
        except BaseException as exc:
            await self._discard(generation_id, exc)
            raise
        finally:
            stopped.set()
            await renewing

    async def _discard(self, generation_id: uuid.UUID, exc: BaseException) -> None:
        reason = (
            events.WRITER_STOPPED
            if isinstance(exc, asyncio.CancelledError)
            else events.MODEL_FAILED
            if isinstance(exc, FabulaError)
            else events.STORE_FAILED
        )

        async def discard() -> None:
            async with self._db.session_scope() as session:
                await service.discard_generation(session, self._subjects, generation_id, reason)

        # A task of its own: discarding must survive a cancellation. If the
        # database is away, the claim's lease runs out and the sweeper does it.
        try:
            await asyncio.shield(asyncio.create_task(discard()))
        except Exception as err:  # noqa: BLE001
            log.warning("could not discard picture story generation %s: %r", generation_id, err)

    async def _renew(self, generation_id: uuid.UUID, stopped: asyncio.Event) -> None:
        interval = self._settings.write_lease_renew_seconds
        wait = interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), timeout=wait)
            if stopped.is_set():
                return
            try:
                async with self._db.session_scope() as session:
                    held = await renew_claim(
                        session,
                        generation_id,
                        dt.timedelta(seconds=self._settings.write_lease_seconds),
                    )
            except Exception as exc:  # noqa: BLE001 - database briefly away: retried soon
                log.warning("could not renew picture story claim %s: %r", generation_id, exc)
                wait = min(_RENEW_RETRY_SECONDS, interval)
                continue
            wait = interval
            if not held:
                return

    # --- Lifecycle: a worker of the app, stopped before the outbox relay ----------

    async def run(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        """Give stories in flight the shutdown grace to finish, then cancel
        them (their generations discarded)."""
        try:
            if self._tasks:
                _, pending = await asyncio.wait(
                    set(self._tasks), timeout=self._settings.shutdown_grace_seconds
                )
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self._stopped.set()
