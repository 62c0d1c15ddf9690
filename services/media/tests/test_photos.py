"""The photo lifecycle over real gRPC, Postgres and NATS with local storage:
create -> upload through the signed URL -> complete -> processed by the
worker; limits, another user's photos, bad bytes, the stuck sweep, deletion
and account deletion."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import grpc
import nats
import pytest
from fabula.media.v1 import media_pb2
from fabula.users.v1 import events_pb2 as users_events
from fabula_common.db import utcnow
from fabula_common.errors import error_reason
from fabula_common.messaging.bus import subject_for
from fabula_common.messaging.headers import MSG_ID_HEADER
from fabula_media.photos.models import Photo
from fabula_media.photos.processing import TIMED_OUT, PhotoProcessor
from fabula_media.storage import create_storage
from fabula_media.storage.signing import UPLOAD, Grant, sign
from fabula_media.testing import (
    eventually,
    format_of,
    get_local,
    has_gps,
    jpeg_with_gps,
    png,
    put_local,
    size_of,
    wait_processed,
)
from sqlalchemy import select, update

COMPLETED = media_pb2.PHOTO_STATUS_COMPLETED
FAILED = media_pb2.PHOTO_STATUS_FAILED


def new_user() -> str:
    return str(uuid.uuid4())


async def create(media, user_id: str, content_type: str, data: bytes, filename: str = ""):
    return await media.CreatePhoto(
        media_pb2.CreatePhotoRequest(
            user_id=user_id, content_type=content_type, size_bytes=len(data), filename=filename
        )
    )


async def uploaded_photo(media, user_id: str, data: bytes, content_type: str) -> media_pb2.Photo:
    created = await create(media, user_id, content_type, data)
    await put_local(media, created.upload, data)
    await media.CompletePhoto(media_pb2.PhotoRef(user_id=user_id, photo_id=created.photo.id))
    return await wait_processed(media, user_id, created.photo.id)


def files_under(root: str, user_id: str) -> list[Path]:
    return [p for p in Path(root, "photos", user_id).rglob("*") if p.is_file()]


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_a_jpeg_is_processed_with_its_gps_position_stripped(media, local_settings):
    user = new_user()
    data = jpeg_with_gps(1600, 1200)
    created = await create(media, user, "image/jpeg", data, "beach.jpg")
    assert created.photo.status == media_pb2.PHOTO_STATUS_PENDING
    assert created.photo.object_key.startswith(f"photos/{user}/{created.photo.id}/")
    upload = created.upload
    assert upload.method == "PUT"
    assert upload.url.startswith("http://gateway.test/v1/media/uploads/")
    assert upload.headers["Content-Type"] == "image/jpeg"
    assert upload.expires_at.ToDatetime(dt.UTC) > utcnow()

    ref = media_pb2.PhotoRef(user_id=user, photo_id=created.photo.id)
    missing = await rpc_error(media.CompletePhoto(ref))
    assert missing.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(missing) == "upload-missing"

    await put_local(media, upload, data, chunk=10_000)
    completed = await media.CompletePhoto(ref)
    assert completed.status in {
        media_pb2.PHOTO_STATUS_UPLOADED, media_pb2.PHOTO_STATUS_PROCESSING, COMPLETED
    }
    # Completing again changes nothing.
    assert (await media.CompletePhoto(ref)).id == created.photo.id

    photo = await wait_processed(media, user, created.photo.id)
    assert photo.status == COMPLETED, photo.failure_reason
    assert (photo.content_type, photo.width, photo.height) == ("image/jpeg", 1600, 1200)
    assert photo.processed_at.ToDatetime() and photo.urls_expire_at.ToDatetime(dt.UTC) > utcnow()
    renditions = {r.name: r for r in photo.renditions}
    assert set(renditions) == {"original", "thumb_256", "thumb_1024"}
    assert (renditions["thumb_256"].width, renditions["thumb_256"].height) == (256, 192)
    assert (renditions["thumb_1024"].width, renditions["thumb_1024"].height) == (1024, 768)

    kind, original = await get_local(media, renditions["original"].url)
    assert kind == "image/jpeg" and format_of(original) == "JPEG"
    assert not has_gps(original)
    assert len(original) == renditions["original"].size_bytes == photo.size_bytes
    kind, thumb = await get_local(media, renditions["thumb_256"].url)
    assert kind == "image/webp" and size_of(thumb) == (256, 192)

    # A peer (stories) reads the processed bytes: thumb_1024 by default.
    read = await media.ReadPhoto(media_pb2.ReadPhotoRequest(user_id=user, photo_id=photo.id))
    assert (read.content_type, read.width, read.height) == ("image/webp", 1024, 768)
    assert format_of(read.data) == "WEBP"
    too_small = await rpc_error(
        media.ReadPhoto(
            media_pb2.ReadPhotoRequest(
                user_id=user, photo_id=photo.id, rendition="original", max_bytes=100
            )
        )
    )
    assert error_reason(too_small) == "file-too-large"

    # The raw upload, GPS and all, is not kept.
    names = {p.name for p in files_under(local_settings.local_dir, user)}
    assert names == {"original", "thumb_256", "thumb_1024"}


async def test_the_limits_refuse_an_upload_before_and_while_it_is_sent(media):
    user = new_user()
    refused = await rpc_error(
        media.CreatePhoto(
            media_pb2.CreatePhotoRequest(user_id=user, content_type="image/gif", size_bytes=10)
        )
    )
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(refused) == "unsupported-media-type"
    too_big = await rpc_error(
        media.CreatePhoto(
            media_pb2.CreatePhotoRequest(
                user_id=user, content_type="image/png", size_bytes=10 * 1024 * 1024 + 1
            )
        )
    )
    assert error_reason(too_big) == "file-too-large"
    assert "limit is 10 MiB" in too_big.details()

    created = await create(media, user, "image/png", png())
    wrong_type = await rpc_error(put_local(media, created.upload, png(), "text/plain"))
    assert error_reason(wrong_type) == "unsupported-media-type"
    over = await rpc_error(put_local(media, created.upload, b"x" * (10 * 1024 * 1024 + 1)))
    assert error_reason(over) == "file-too-large"
    # Nothing of the refused uploads was kept.
    ref = media_pb2.PhotoRef(user_id=user, photo_id=created.photo.id)
    assert error_reason(await rpc_error(media.CompletePhoto(ref))) == "upload-missing"


async def test_signed_urls_are_checked(media, local_settings):
    user = new_user()
    created = await create(media, user, "image/png", png())
    token = created.upload.url.rsplit("/", 1)[-1]
    forged = created.upload.url[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    forged_upload = media_pb2.Upload(url=forged, headers=created.upload.headers)
    bad = await rpc_error(put_local(media, forged_upload, png()))
    assert bad.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(bad) == "bad-signature"

    secret = local_settings.signing_secret.get_secret_value()
    expired_token = sign(
        secret, UPLOAD, Grant(created.photo.object_key, "image/png", 1000),
        utcnow() - dt.timedelta(seconds=30),
    )
    expired = media_pb2.Upload(url=f"http://gateway.test/v1/media/uploads/{expired_token}",
                               headers=created.upload.headers)
    late = await rpc_error(put_local(media, expired, png()))
    assert (late.code(), error_reason(late)) == (grpc.StatusCode.PERMISSION_DENIED, "url-expired")
    # An upload token is no download token.
    wrong_kind = await rpc_error(get_local(media, created.upload.url))
    assert error_reason(wrong_kind) == "bad-signature"


async def test_another_users_photo_is_not_found(media):
    owner, other = new_user(), new_user()
    photo = await uploaded_photo(media, owner, png(), "image/png")
    assert photo.status == COMPLETED
    theirs = media_pb2.PhotoRef(user_id=other, photo_id=photo.id)
    for call in (media.GetPhoto(theirs), media.CompletePhoto(theirs), media.DeletePhoto(theirs)):
        assert (await rpc_error(call)).code() is grpc.StatusCode.NOT_FOUND
    read = media.ReadPhoto(media_pb2.ReadPhotoRequest(user_id=other, photo_id=photo.id))
    assert (await rpc_error(read)).code() is grpc.StatusCode.NOT_FOUND
    listed = await media.ListPhotos(media_pb2.ListPhotosRequest(user_id=other))
    assert list(listed.photos) == []
    malformed = media_pb2.PhotoRef(user_id=owner, photo_id="not-a-uuid")
    assert (await rpc_error(media.GetPhoto(malformed))).code() is grpc.StatusCode.NOT_FOUND


async def test_a_text_file_named_png_fails_with_a_reason(media, local_settings):
    user = new_user()
    text = b"shopping list: eggs, milk\n"
    photo = await uploaded_photo(media, user, text, "image/png")
    assert photo.status == FAILED
    assert "not an image we accept" in photo.failure_reason
    assert list(photo.renditions) == []
    assert files_under(local_settings.local_dir, user) == []
    not_ready = await rpc_error(
        media.ReadPhoto(media_pb2.ReadPhotoRequest(user_id=user, photo_id=photo.id))
    )
    assert not_ready.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(not_ready) == "photo-not-ready"


async def test_photos_are_listed_newest_first_by_cursor_and_deleted_with_their_files(
    media, local_settings
):
    user = new_user()
    ids = []
    for _ in range(3):
        ids.append((await create(media, user, "image/png", png())).photo.id)
    first = await media.ListPhotos(media_pb2.ListPhotosRequest(user_id=user, page_size=2))
    second = await media.ListPhotos(
        media_pb2.ListPhotosRequest(user_id=user, page_size=2, cursor=first.next_cursor)
    )
    assert [p.id for p in [*first.photos, *second.photos]] == ids[::-1]
    assert second.next_cursor == ""
    bad_cursor = media.ListPhotos(media_pb2.ListPhotosRequest(user_id=user, cursor="%%%"))
    assert (await rpc_error(bad_cursor)).code() is grpc.StatusCode.INVALID_ARGUMENT

    done = await uploaded_photo(media, user, png(), "image/png")
    assert files_under(local_settings.local_dir, user)
    await media.DeletePhoto(media_pb2.PhotoRef(user_id=user, photo_id=done.id))
    assert not [p for p in files_under(local_settings.local_dir, user) if done.id in str(p)]
    gone = media.GetPhoto(media_pb2.PhotoRef(user_id=user, photo_id=done.id))
    assert (await rpc_error(gone)).code() is grpc.StatusCode.NOT_FOUND


async def test_a_photo_stuck_in_processing_is_queued_again_then_failed(
    media, local_settings, db
):
    user = new_user()
    created = await create(media, user, "image/png", png())
    photo_id = uuid.UUID(created.photo.id)
    long_ago = utcnow() - dt.timedelta(hours=1)
    async with db.session_scope() as session:
        # As a worker that died mid-way leaves it (its upload never arrived).
        await session.execute(
            update(Photo)
            .where(Photo.id == photo_id)
            .values(status="processing", attempts=1, status_changed_at=long_ago)
        )
    settings = local_settings.model_copy(
        update={"processing_timeout_seconds": 60, "processing_max_attempts": 2}
    )
    storage = create_storage(settings)
    sweeper = PhotoProcessor(db, storage, settings)
    try:
        assert await sweeper.sweep() >= 1
        # Queued again: the worker takes it (second attempt) and finds no upload.
        photo = await wait_processed(media, user, created.photo.id)
        assert photo.status == FAILED and "gone" in photo.failure_reason

        async with db.session_scope() as session:
            await session.execute(
                update(Photo)
                .where(Photo.id == photo_id)
                .values(status="processing", attempts=2, status_changed_at=long_ago,
                        failure_reason=None)
            )
        await sweeper.sweep()
        async with db.session_scope() as session:
            stored = await session.scalar(select(Photo).where(Photo.id == photo_id))
        assert (stored.status, stored.failure_reason) == ("failed", TIMED_OUT)
    finally:
        sweeper.close()
        await storage.aclose()


async def test_account_deletion_removes_the_users_photos_and_files(media, local_settings):
    user, other = new_user(), new_user()
    await uploaded_photo(media, user, png(), "image/png")
    await create(media, user, "image/png", png())
    kept = await uploaded_photo(media, other, png(), "image/png")
    assert files_under(local_settings.local_dir, user)

    nc = await nats.connect(local_settings.nats_url, connect_timeout=2)
    try:
        event = users_events.UserDeleted(event_id=str(uuid.uuid4()), user_id=user)
        await nc.jetstream().publish(
            subject_for(local_settings, "users", "user_deleted"),
            event.SerializeToString(),
            headers={MSG_ID_HEADER: event.event_id},
        )
    finally:
        await nc.close()

    async def forgotten() -> bool:
        listed = await media.ListPhotos(media_pb2.ListPhotosRequest(user_id=user))
        return not listed.photos

    await eventually(forgotten)
    assert files_under(local_settings.local_dir, user) == []
    still = await media.GetPhoto(media_pb2.PhotoRef(user_id=other, photo_id=kept.id))
    assert still.status == COMPLETED
    assert os.path.isdir(local_settings.local_dir)
