"""The media worker's part of the lifecycle: PhotoUploaded -> processing ->
completed | failed, and the sweep that never leaves a photo stuck.

Each attempt is claimed in a transaction of its own (the photo shows
`processing`, its attempt counted), the storage and Pillow work runs with no
transaction open, and the outcome is written in another one; the raw upload
(with whatever metadata it carried) is removed once the outcome is stored.
Storage failures are retried a few times with growing pauses; still failing,
the event is redelivered later by JetStream (its own backoff), and should
that run out too, the sweep queues the photo again or fails it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from fabula.media.v1 import events_pb2
from fabula_common.db import Database, utcnow
from fabula_common.db_errors import log_background_failure
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_media.photos import events
from fabula_media.photos.images import ImageRejected, Processed, process_image
from fabula_media.photos.models import Photo, PhotoStatus, Rendition
from fabula_media.photos.service import photo_prefix, rendition_key
from fabula_media.settings import Settings
from fabula_media.storage import ObjectMissing, Storage, StorageUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

UPLOAD_GONE = "The uploaded file is gone; please upload the photo again."
TIMED_OUT = "Processing did not finish in time; please upload the photo again."
UNFINISHED = (PhotoStatus.uploaded, PhotoStatus.processing)


class PhotoProcessor:
    """Applies PhotoUploaded events (the consumer's handler) and sweeps."""

    def __init__(self, db: Database, storage: Storage, settings: Settings) -> None:
        self.db = db
        self.storage = storage
        self.settings = settings
        self.subjects = events.Subjects(settings)
        self._pool = ThreadPoolExecutor(
            max_workers=settings.processing_threads, thread_name_prefix="media-images"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def _with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        """A storage call, tried again after 0.2 s, 0.4 s, ... (MEDIA_STORAGE_ATTEMPTS in all)."""
        attempts = self.settings.storage_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await call()
            except StorageUnavailable as exc:
                if attempt == attempts:
                    raise
                log.warning("storage call failed (attempt %d of %d): %s", attempt, attempts, exc)
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    async def handle_uploaded(self, session: AsyncSession, event: events_pb2.PhotoUploaded) -> None:
        """The consumer's handler; `session` holds only the event's inbox row."""
        try:
            photo_id = uuid.UUID(event.photo_id)
        except ValueError:
            log.error("photo-uploaded event %s dropped: photo_id %r is not a UUID",
                      event.event_id, event.photo_id)
            return
        await self.process(photo_id)

    async def process(self, photo_id: uuid.UUID) -> None:
        photo = await self._claim(photo_id)
        if photo is None:
            return
        try:
            data = await self._with_retries(
                partial(self.storage.read, photo.object_key, self.settings.max_upload_bytes)
            )
        except ObjectMissing:
            await self._finish_failed(photo.id, UPLOAD_GONE)
            return
        try:
            processed = await asyncio.get_running_loop().run_in_executor(
                self._pool,
                partial(
                    process_image,
                    data,
                    allowed_types=self.settings.allowed_types,
                    max_bytes=self.settings.max_upload_bytes,
                    max_pixels=self.settings.max_pixels,
                    thumbnail_sizes=self.settings.thumbnail_sizes,
                ),
            )
        except ImageRejected as exc:
            await self._finish_failed(photo.id, str(exc))
            return
        for encoded in processed.renditions:
            await self._with_retries(
                partial(
                    self.storage.write,
                    rendition_key(photo, encoded.name),
                    encoded.data,
                    encoded.content_type,
                )
            )
        await self._finish_completed(photo, processed)

    async def _claim(self, photo_id: uuid.UUID) -> Photo | None:
        async with self.db.session_scope() as session:
            photo = (
                await session.execute(select(Photo).where(Photo.id == photo_id).with_for_update())
            ).scalar_one_or_none()
            if photo is None or photo.status not in UNFINISHED:
                log.info("photo %s: nothing to process (%s)", photo_id,
                         "gone" if photo is None else photo.status)
                return None
            now = utcnow()
            photo.status = PhotoStatus.processing
            photo.attempts += 1
            photo.status_changed_at = now
            photo.updated_at = now
            return photo

    async def _finish_completed(self, claimed: Photo, processed: Processed) -> None:
        async with self.db.session_scope() as session:
            photo = await self._locked(session, claimed.id)
            if photo is None:
                # Deleted while processing: what was written goes too.
                await self.storage.delete_prefix(photo_prefix(claimed.user_id, claimed.id))
                return
            if photo.status != PhotoStatus.processing:
                # The sweep failed it meanwhile: its renditions are not wanted.
                for encoded in processed.renditions:
                    await self.storage.delete_prefix(rendition_key(photo, encoded.name))
                return
            original = processed.renditions[0]
            now = utcnow()
            photo.renditions = [
                Rendition(
                    name=encoded.name,
                    object_key=rendition_key(photo, encoded.name),
                    content_type=encoded.content_type,
                    width=encoded.width,
                    height=encoded.height,
                    size_bytes=len(encoded.data),
                )
                for encoded in processed.renditions
            ]
            photo.status = PhotoStatus.completed
            photo.content_type = processed.content_type
            photo.width, photo.height = processed.width, processed.height
            photo.size_bytes = len(original.data)
            photo.processed_at = photo.status_changed_at = photo.updated_at = now
            await events.photo_processed(session, self.subjects, photo)
        log.info("photo %s processed: %dx%d %s", claimed.id, processed.width, processed.height,
                 processed.content_type)
        await self._drop_upload(claimed)

    async def _finish_failed(self, photo_id: uuid.UUID, reason: str) -> None:
        async with self.db.session_scope() as session:
            photo = await self._locked(session, photo_id)
            if photo is None or photo.status not in UNFINISHED:
                return
            await self._fail(session, photo, reason)
        log.info("photo %s failed: %s", photo_id, reason)
        await self._drop_upload(photo)

    async def _fail(self, session: AsyncSession, photo: Photo, reason: str) -> None:
        now = utcnow()
        photo.status = PhotoStatus.failed
        photo.failure_reason = reason
        photo.processed_at = photo.status_changed_at = photo.updated_at = now
        await events.photo_processed(session, self.subjects, photo)

    @staticmethod
    async def _locked(session: AsyncSession, photo_id: uuid.UUID) -> Photo | None:
        query = select(Photo).where(Photo.id == photo_id).with_for_update()
        return (await session.execute(query)).scalar_one_or_none()

    async def _drop_upload(self, photo: Photo) -> None:
        """The raw upload, metadata and all: only renditions are kept."""
        try:
            await self.storage.delete_prefix(photo.object_key)
        except StorageUnavailable as exc:
            log.warning("photo %s: raw upload not removed (%s)", photo.id, exc)

    async def sweep(self) -> int:
        """Photos `uploaded` or `processing` for longer than the timeout: queued
        again (a new PhotoUploaded), or failed after the last attempt. Returns
        how many it touched."""
        horizon = utcnow() - dt.timedelta(seconds=self.settings.processing_timeout_seconds)
        dropped: list[Photo] = []
        async with self.db.session_scope() as session:
            stuck = (
                await session.execute(
                    select(Photo)
                    .where(Photo.status.in_(UNFINISHED), Photo.status_changed_at < horizon)
                    .order_by(Photo.status_changed_at)
                    .limit(100)
                    .with_for_update(skip_locked=True)
                )
            ).scalars().all()
            for photo in stuck:
                if photo.attempts >= self.settings.processing_max_attempts:
                    await self._fail(session, photo, TIMED_OUT)
                    dropped.append(photo)
                    log.warning("photo %s failed: not processed after %d attempts",
                                photo.id, photo.attempts)
                else:
                    now = utcnow()
                    photo.status = PhotoStatus.uploaded
                    photo.status_changed_at = photo.updated_at = now
                    await events.photo_uploaded(session, self.subjects, photo)
                    log.warning("photo %s stuck in processing: queued again", photo.id)
        for photo in dropped:
            await self._drop_upload(photo)
        return len(stuck)


class StuckPhotoSweeper:
    """Background worker running `PhotoProcessor.sweep` every MEDIA_SWEEP_SECONDS."""

    def __init__(self, processor: PhotoProcessor, interval_seconds: float) -> None:
        self.processor = processor
        self.interval = interval_seconds
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                await self.processor.sweep()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log_background_failure(log, "the stuck photo sweep", exc)
            try:
                await asyncio.wait_for(self._stopped.wait(), timeout=self.interval)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stopped.set()
