"""The same upload flow against an S3-compatible server (moto's server mode,
speaking S3's wire format on a local port): a presigned POST whose policy pins
the type and size, sent with httpx exactly as a client would; processing
reads and writes through S3; downloads are presigned GETs; deletion removes
the objects."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from aiobotocore.session import get_session
from fabula.media.v1 import media_pb2, media_pb2_grpc
from fabula_common.testing import free_port
from fabula_media.settings import Settings
from fabula_media.testing import (
    eventually,
    format_of,
    has_gps,
    jpeg_with_gps,
    media_stack,
    wait_processed,
)
from moto.server import ThreadedMotoServer

BUCKET = "fabula-media-test"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def s3_endpoint() -> str:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
async def s3_client(s3_endpoint):
    async with get_session().create_client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", **CREDENTIALS
    ) as client:
        await client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(scope="module")
def s3_settings(test_database, test_stream, s3_endpoint, s3_client) -> Settings:
    return Settings(
        grpc_port=free_port(),
        storage="s3",
        s3_endpoint_url=s3_endpoint,
        s3_bucket=BUCKET,
        s3_access_key_id=CREDENTIALS["aws_access_key_id"],
        s3_secret_access_key=CREDENTIALS["aws_secret_access_key"],
        outbox_poll_seconds=0.05,
    )


@pytest.fixture(scope="module")
async def media(s3_settings) -> AsyncIterator[media_pb2_grpc.MediaServiceStub]:
    async with media_stack(s3_settings) as stub:
        yield stub


async def keys_under(s3_client, prefix: str) -> list[str]:
    listed = await s3_client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


async def _nothing_under(s3_client, prefix: str) -> bool:
    return await keys_under(s3_client, prefix) == []


async def test_upload_through_a_presigned_post_then_processed_in_s3(media, s3_client):
    user = str(uuid.uuid4())
    data = jpeg_with_gps(1200, 900)
    created = await media.CreatePhoto(
        media_pb2.CreatePhotoRequest(user_id=user, content_type="image/jpeg", size_bytes=len(data))
    )
    upload = created.upload
    assert upload.method == "POST"
    fields = dict(upload.fields)
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert {"Content-Type": "image/jpeg"} in policy["conditions"]
    assert ["content-length-range", 1, 10 * 1024 * 1024] in policy["conditions"]

    async with httpx.AsyncClient(timeout=10) as http:
        sent = await http.post(
            upload.url, data=fields, files={"file": ("beach.jpg", data, "image/jpeg")}
        )
        assert sent.status_code in (200, 201, 204), sent.text

        ref = media_pb2.PhotoRef(user_id=user, photo_id=created.photo.id)
        await media.CompletePhoto(ref)
        photo = await wait_processed(media, user, created.photo.id)
        assert photo.status == media_pb2.PHOTO_STATUS_COMPLETED, photo.failure_reason
        renditions = {r.name: r for r in photo.renditions}
        assert (renditions["thumb_256"].width, renditions["thumb_256"].height) == (256, 192)

        original = await http.get(renditions["original"].url)
        assert original.status_code == 200
        assert format_of(original.content) == "JPEG" and not has_gps(original.content)
        thumb = await http.get(renditions["thumb_1024"].url)
        assert format_of(thumb.content) == "WEBP"

    prefix = f"photos/{user}/{photo.id}/"
    assert await keys_under(s3_client, prefix) == [
        prefix + "original", prefix + "thumb_1024", prefix + "thumb_256"
    ]
    read = await media.ReadPhoto(media_pb2.ReadPhotoRequest(user_id=user, photo_id=photo.id))
    assert read.width == 1024 and format_of(read.data) == "WEBP"

    await media.DeletePhoto(ref)
    assert await keys_under(s3_client, prefix) == []


async def test_bytes_that_are_no_image_fail_and_local_transfer_is_refused(media, s3_client):
    user = str(uuid.uuid4())
    text = b"not a picture at all"
    created = await media.CreatePhoto(
        media_pb2.CreatePhotoRequest(user_id=user, content_type="image/png", size_bytes=len(text))
    )
    async with httpx.AsyncClient(timeout=10) as http:
        sent = await http.post(
            created.upload.url,
            data=dict(created.upload.fields),
            files={"file": ("notes.png", text, "image/png")},
        )
        assert sent.status_code in (200, 201, 204), sent.text
    await media.CompletePhoto(media_pb2.PhotoRef(user_id=user, photo_id=created.photo.id))
    photo = await wait_processed(media, user, created.photo.id)
    assert photo.status == media_pb2.PHOTO_STATUS_FAILED
    assert "not an image we accept" in photo.failure_reason
    # The raw upload is removed just after the failure is recorded.
    await eventually(lambda: _nothing_under(s3_client, f"photos/{user}/"))

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await media.GetDownload(media_pb2.DownloadRequest(token="x")).read()
    assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
