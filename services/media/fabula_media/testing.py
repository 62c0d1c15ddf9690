"""Helpers for tests of media and its callers: images made with Pillow (as a
camera or an editor would), the service and worker in-process, and what the
gateway does with signed local-storage URLs."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import grpc
from fabula.media.v1 import media_pb2, media_pb2_grpc
from fabula_common.testing import running_app
from PIL import ExifTags, Image

from fabula_media.app import create_app
from fabula_media.settings import Settings
from fabula_media.worker import run_worker

GPS_LATITUDE = (52.0, 31.0, 12.0)


def jpeg_with_gps(width: int = 1600, height: int = 1200) -> bytes:
    """A JPEG whose EXIF names a camera and the place it was taken."""
    image = Image.new("RGB", (width, height), (200, 40, 40))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = GPS_LATITUDE
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 0.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def png(width: int = 300, height: int = 200) -> bytes:
    image = Image.new("RGBA", (width, height), (20, 120, 220, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def has_gps(data: bytes) -> bool:
    exif = Image.open(io.BytesIO(data)).getexif()
    return bool(exif.get_ifd(ExifTags.IFD.GPSInfo)) or ExifTags.IFD.GPSInfo in exif


def size_of(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def format_of(data: bytes) -> str:
    return Image.open(io.BytesIO(data)).format


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def media_stack(settings: Settings) -> AsyncIterator[media_pb2_grpc.MediaServiceStub]:
    """The media service and a worker with `settings`; the service's stub."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))
    try:
        async with (
            running_app(create_app(settings)) as address,
            grpc.aio.insecure_channel(address) as channel,
        ):
            yield media_pb2_grpc.MediaServiceStub(channel)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)


def token_of(url: str) -> str:
    """The token of a signed local-storage URL (its last path segment)."""
    return urlsplit(url).path.rsplit("/", 1)[-1]


async def put_local(
    media: media_pb2_grpc.MediaServiceStub,
    upload: media_pb2.Upload,
    data: bytes,
    content_type: str | None = None,
    chunk: int = 64 * 1024,
) -> None:
    """What the gateway does with a PUT to a signed upload URL."""
    sent_type = upload.headers["Content-Type"] if content_type is None else content_type

    async def chunks():
        yield media_pb2.UploadChunk(token=token_of(upload.url), content_type=sent_type)
        for start in range(0, len(data), chunk):
            yield media_pb2.UploadChunk(data=data[start : start + chunk])

    await media.PutUpload(chunks(), timeout=10)


async def get_local(media: media_pb2_grpc.MediaServiceStub, url: str) -> tuple[str, bytes]:
    """What the gateway does with a GET of a signed download URL."""
    content_type, parts = "", []
    async for chunk in media.GetDownload(media_pb2.DownloadRequest(token=token_of(url)), timeout=10):
        content_type = content_type or chunk.content_type
        parts.append(chunk.data)
    return content_type, b"".join(parts)


async def wait_processed(
    media: media_pb2_grpc.MediaServiceStub, user_id: str, photo_id: str
) -> media_pb2.Photo:
    """The photo once completed or failed."""
    done = {media_pb2.PHOTO_STATUS_COMPLETED, media_pb2.PHOTO_STATUS_FAILED}
    photo = None

    async def finished() -> bool:
        nonlocal photo
        photo = await media.GetPhoto(media_pb2.PhotoRef(user_id=user_id, photo_id=photo_id))
        return photo.status in done

    await eventually(finished)
    return photo
