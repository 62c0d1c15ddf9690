"""The photo lifecycle: pending (created, waiting for its bytes) -> uploaded
(the client said they are in storage; PhotoUploaded queued in the same
transaction) -> processing (the worker took it) -> completed | failed(reason).

Storage calls are never made inside a transaction that holds a row lock
longer than the call needs: the state is read, storage asked, then the row
locked and its state checked again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from fabula_common.db import Database, utcnow
from fabula_common.errors import (
    FileTooLarge,
    InvalidArgument,
    NotFound,
    PhotoNotReady,
    UnsupportedMediaType,
    UploadMissing,
)
from fabula_common.pagination import decode_cursor, encode_cursor, page_limit
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_media.photos import events
from fabula_media.photos.images import ORIGINAL, thumbnail_name
from fabula_media.photos.models import FILENAME_MAX_LENGTH, Photo, PhotoStatus, Rendition
from fabula_media.settings import Settings
from fabula_media.storage import Storage, UploadTarget

DEFAULT_RENDITION = thumbnail_name(1024)


def parse_user_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument("user_id must be a UUID") from None


def parse_photo_id(value: str) -> uuid.UUID:
    # No photo has a malformed id, so asking for one finds nothing.
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("photo not found") from None


def photo_prefix(user_id: uuid.UUID, photo_id: uuid.UUID) -> str:
    return f"photos/{user_id}/{photo_id}/"


def user_prefix(user_id: uuid.UUID) -> str:
    return f"photos/{user_id}/"


def rendition_key(photo: Photo, name: str) -> str:
    return f"{photo_prefix(photo.user_id, photo.id)}{name}"


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MiB"
    if size >= 1024:
        return f"{size / 1024:g} KiB"
    return f"{size} bytes"


@dataclass(frozen=True)
class PhotoView:
    """A photo with its renditions' download URLs (when asked for)."""

    photo: Photo
    urls: dict[str, str]
    urls_expire_at: dt.datetime | None


class PhotosService:
    def __init__(self, db: Database, storage: Storage, settings: Settings) -> None:
        self.db = db
        self.storage = storage
        self.settings = settings
        self.subjects = events.Subjects(settings)

    def _expiry(self) -> dt.datetime:
        return utcnow() + dt.timedelta(seconds=self.settings.url_ttl_seconds)

    def check_upload(self, content_type: str, size_bytes: int) -> str:
        """The declared type, normalised, when the limits allow the upload."""
        kind = content_type.split(";", 1)[0].strip().lower()
        allowed = self.settings.allowed_types
        if kind not in allowed:
            raise UnsupportedMediaType(
                f"{kind or 'a file without a type'} is not accepted; upload "
                f"{', '.join(allowed)}",
                metadata={"allowed_types": ",".join(allowed)},
            )
        limit = self.settings.max_upload_bytes
        if size_bytes <= 0:
            raise InvalidArgument("size_bytes must be the file's size, more than 0")
        if size_bytes > limit:
            raise FileTooLarge(
                f"the file is {human_size(size_bytes)}; the limit is {human_size(limit)}",
                metadata={"max_bytes": str(limit)},
            )
        return kind

    async def create_photo(
        self, user_id: uuid.UUID, content_type: str, size_bytes: int, filename: str
    ) -> tuple[Photo, UploadTarget]:
        kind = self.check_upload(content_type, size_bytes)
        photo_id = uuid.uuid4()
        photo = Photo(
            id=photo_id,
            user_id=user_id,
            status=PhotoStatus.pending,
            content_type=kind,
            size_bytes=size_bytes,
            filename=filename.strip()[:FILENAME_MAX_LENGTH],
            object_key=f"{photo_prefix(user_id, photo_id)}upload",
            attempts=0,
            renditions=[],
        )
        # The URL is signed first: a storage that cannot sign leaves no row.
        upload = await self.storage.upload_target(
            photo.object_key, kind, self.settings.max_upload_bytes, self._expiry()
        )
        async with self.db.session_scope() as session:
            session.add(photo)
        return photo, upload

    async def _get(
        self, session: AsyncSession, user_id: uuid.UUID, photo_id: uuid.UUID, *, lock: bool = False
    ) -> Photo:
        query = select(Photo).where(Photo.id == photo_id, Photo.user_id == user_id)
        if lock:
            query = query.with_for_update()
        photo = (await session.execute(query)).scalar_one_or_none()
        if photo is None:
            raise NotFound("photo not found")
        return photo

    async def complete_photo(self, user_id: uuid.UUID, photo_id: uuid.UUID) -> PhotoView:
        async with self.db.session_scope() as session:
            photo = await self._get(session, user_id, photo_id)
        if photo.status != PhotoStatus.pending:
            return await self.view(photo)  # already completed: the same answer
        size = await self.storage.size_of(photo.object_key)
        if size is None:
            raise UploadMissing(
                "the photo's bytes are not in storage yet: upload them to the URL "
                "CreatePhoto returned, then complete it",
                metadata={"photo_id": str(photo_id)},
            )
        async with self.db.session_scope() as session:
            photo = await self._get(session, user_id, photo_id, lock=True)
            if photo.status == PhotoStatus.pending:
                now = utcnow()
                photo.status = PhotoStatus.uploaded
                photo.size_bytes = size
                photo.status_changed_at = now
                photo.updated_at = now
                await events.photo_uploaded(session, self.subjects, photo)
        return await self.view(photo)

    async def get_photo(self, user_id: uuid.UUID, photo_id: uuid.UUID) -> PhotoView:
        async with self.db.session_scope() as session:
            photo = await self._get(session, user_id, photo_id)
        return await self.view(photo)

    async def view(self, photo: Photo) -> PhotoView:
        """The photo with a download URL for each rendition (completed photos only)."""
        if photo.status != PhotoStatus.completed or not photo.renditions:
            return PhotoView(photo, {}, None)
        expires_at = self._expiry()
        urls = {
            rendition.name: await self.storage.download_url(
                rendition.object_key, rendition.content_type, expires_at
            )
            for rendition in photo.renditions
        }
        return PhotoView(photo, urls, expires_at)

    async def list_photos(
        self, user_id: uuid.UUID, page_size: int, cursor: str
    ) -> tuple[list[Photo], str]:
        limit = page_limit(page_size)
        after = decode_cursor(cursor)
        query = select(Photo).where(Photo.user_id == user_id)
        if after is not None:
            moment, key = after
            try:
                key_id = uuid.UUID(key)
            except ValueError:
                raise InvalidArgument("cursor is malformed") from None
            query = query.where(
                or_(
                    Photo.created_at < moment,
                    and_(Photo.created_at == moment, Photo.id < key_id),
                )
            )
        query = query.order_by(Photo.created_at.desc(), Photo.id.desc()).limit(limit + 1)
        async with self.db.session_scope() as session:
            photos = list((await session.execute(query)).scalars())
        next_cursor = ""
        if len(photos) > limit:
            photos = photos[:limit]
            last = photos[-1]
            next_cursor = encode_cursor(last.created_at, str(last.id))
        return photos, next_cursor

    async def delete_photo(self, user_id: uuid.UUID, photo_id: uuid.UUID) -> None:
        async with self.db.session_scope() as session:
            await self._get(session, user_id, photo_id)
        # Objects first: should storage fail, the photo is still there to delete again.
        await self.storage.delete_prefix(photo_prefix(user_id, photo_id))
        async with self.db.session_scope() as session:
            photo = await self._get(session, user_id, photo_id, lock=True)
            await session.delete(photo)
            await events.photo_deleted(session, self.subjects, photo_id, user_id)
        # What a worker wrote meanwhile (it finds the photo gone and removes
        # its own, too: whichever comes last cleans up).
        await self.storage.delete_prefix(photo_prefix(user_id, photo_id))

    async def read_photo(
        self, user_id: uuid.UUID, photo_id: uuid.UUID, name: str, max_bytes: int
    ) -> tuple[bytes, Rendition]:
        async with self.db.session_scope() as session:
            photo = await self._get(session, user_id, photo_id)
        if photo.status != PhotoStatus.completed:
            reason = f": {photo.failure_reason}" if photo.failure_reason else ""
            raise PhotoNotReady(
                f"the photo is {photo.status}, not processed{reason}",
                metadata={"photo_id": str(photo_id), "status": photo.status},
            )
        wanted = name or DEFAULT_RENDITION
        renditions = {rendition.name: rendition for rendition in photo.renditions}
        rendition = renditions.get(wanted)
        if rendition is None and not name:
            # The default size is not configured: the largest thumbnail there is.
            thumbnails = [r for r in photo.renditions if r.name != ORIGINAL]
            rendition = max(thumbnails, key=lambda r: r.width, default=renditions.get(ORIGINAL))
        if rendition is None:
            raise NotFound(
                f"the photo has no rendition {wanted!r}; it has {', '.join(sorted(renditions))}"
            )
        limit = min(max_bytes or self.settings.read_max_bytes, self.settings.read_max_bytes)
        if rendition.size_bytes > limit:
            raise FileTooLarge(
                f"the {rendition.name} rendition is {human_size(rendition.size_bytes)}, "
                f"more than the {human_size(limit)} asked for"
            )
        data = await self.storage.read(rendition.object_key, limit)
        return data, rendition
