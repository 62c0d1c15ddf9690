"""The photo routes against the real media service and worker (in-process,
on real Postgres and NATS, local storage): create -> PUT to the signed URL
through the gateway -> complete -> processed -> download through the gateway;
problem documents for what the limits refuse, another user's photo, bad
links and media being down."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fabula_common.testing import free_port
from fabula_common.tokens import issue_access_token
from fabula_gateway.app import create_app
from fabula_gateway.principals import Principal
from fabula_media.settings import Settings as MediaSettings
from fabula_media.testing import format_of, has_gps, jpeg_with_gps, media_stack, png

OTHER_USER_ID = str(uuid.uuid4())
GATEWAY = "http://gateway"


@pytest.fixture(scope="module")
def media_settings(test_database, test_stream, tmp_path_factory) -> MediaSettings:
    return MediaSettings(
        grpc_port=free_port(),
        local_dir=str(tmp_path_factory.mktemp("media")),
        public_url=GATEWAY,
        outbox_poll_seconds=0.05,
        max_upload_bytes=2 * 1024 * 1024,
    )


@pytest.fixture(scope="module")
async def media(media_settings) -> AsyncIterator[None]:
    async with media_stack(media_settings):
        yield


@pytest.fixture
async def gateway(media, media_settings, make_settings, serve, user_id) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(media_addr=media_settings.grpc_listen_address))
    for user in (user_id, OTHER_USER_ID):
        app.state.principals.remember_user(Principal(user))
    async with serve(app) as client:
        yield client


def noisy_jpeg_with_gps(width: int, height: int) -> bytes:
    """A JPEG of noise (large once re-encoded: several 64 KiB chunks) with a GPS position."""
    import io

    from PIL import Image

    noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    exif = Image.open(io.BytesIO(jpeg_with_gps(8, 8))).getexif()
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


def bearer(settings, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_access_token(settings, user)[0]}"}


async def upload_photo(gateway: httpx.AsyncClient, auth, data: bytes, content_type: str) -> dict:
    created = await gateway.post(
        "/v1/photos", json={"content_type": content_type, "size_bytes": len(data)}, headers=auth
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["Location"] == f"/v1/photos/{body['photo']['id']}"
    upload = body["upload"]
    assert upload["method"] == "PUT" and upload["url"].startswith(f"{GATEWAY}/v1/media/uploads/")
    sent = await gateway.put(upload["url"], content=data, headers=upload["headers"])
    assert sent.status_code == 204, sent.text
    return body["photo"]


async def processed(gateway: httpx.AsyncClient, auth, photo_id: str) -> dict:
    deadline = time.monotonic() + 20
    while True:
        photo = (await gateway.get(f"/v1/photos/{photo_id}", headers=auth)).json()
        if photo["status"] in ("completed", "failed"):
            return photo
        assert time.monotonic() < deadline, photo
        await asyncio.sleep(0.05)


async def test_a_photo_uploaded_through_the_gateway_is_processed_and_downloadable(
    gateway, auth, problem, caplog
):
    data = noisy_jpeg_with_gps(800, 600)
    photo = await upload_photo(gateway, auth, data, "image/jpeg")
    assert photo["status"] == "pending"
    completed = await gateway.post(f"/v1/photos/{photo['id']}/complete", headers=auth)
    assert completed.status_code == 200, completed.text
    done = await processed(gateway, auth, photo["id"])
    assert done["status"] == "completed", done
    assert (done["width"], done["height"]) == (800, 600)
    renditions = {r["name"]: r for r in done["renditions"]}
    assert set(renditions) == {"original", "thumb_256", "thumb_1024"}
    original = await gateway.get(renditions["original"]["url"])
    assert original.status_code == 200
    assert original.headers["content-type"] == "image/jpeg"
    assert int(original.headers["content-length"]) == renditions["original"]["size_bytes"]
    assert not has_gps(original.content)
    thumb = await gateway.get(renditions["thumb_256"]["url"])
    assert format_of(thumb.content) == "WEBP"
    # A file of several chunks, fetched again: whole each time.
    for _ in range(2):
        again = await gateway.get(renditions["original"]["url"])
        assert again.content == original.content
    # Streamed to the end without an error after the last byte (a server
    # would reset the connection).
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text

    listed = (await gateway.get("/v1/photos?limit=10", headers=auth)).json()
    assert photo["id"] in [p["id"] for p in listed["items"]]
    assert all(r["url"] is None for p in listed["items"] for r in p["renditions"])

    assert (await gateway.delete(f"/v1/photos/{photo['id']}", headers=auth)).status_code == 204
    problem(await gateway.get(f"/v1/photos/{photo['id']}", headers=auth), 404)
    # Its files are gone: the old link finds nothing.
    problem(await gateway.get(renditions["original"]["url"]), 404)


async def test_what_the_limits_refuse_is_a_problem_with_a_clear_type(gateway, auth, problem):
    gif = await gateway.post(
        "/v1/photos", json={"content_type": "image/gif", "size_bytes": 10}, headers=auth
    )
    assert problem(gif, 422)["type"].endswith("/file-type-not-allowed")
    huge = await gateway.post(
        "/v1/photos", json={"content_type": "image/png", "size_bytes": 3 * 1024 * 1024},
        headers=auth,
    )
    body = problem(huge, 422)
    assert body["type"].endswith("/file-too-large") and "2 MiB" in body["detail"]

    created = (await gateway.post(
        "/v1/photos", json={"content_type": "image/png", "size_bytes": 100}, headers=auth
    )).json()
    url = created["upload"]["url"]
    early = await gateway.post(f"/v1/photos/{created['photo']['id']}/complete", headers=auth)
    assert problem(early, 409)["type"].endswith("/upload-missing")
    wrong_type = await gateway.put(url, content=png(), headers={"Content-Type": "text/plain"})
    assert problem(wrong_type, 415)["type"].endswith("/upload-content-type-mismatch")
    # Over the signed cap: refused while streaming (the body limit of JSON routes
    # does not apply here).
    too_big = await gateway.put(
        url, content=b"x" * (2 * 1024 * 1024 + 1), headers={"Content-Type": "image/png"}
    )
    assert problem(too_big, 422)["type"].endswith("/file-too-large")
    forged = await gateway.put(url + "x", content=png(), headers={"Content-Type": "image/png"})
    assert problem(forged, 403)["type"].endswith("/bad-signature")


async def test_another_users_photo_is_404_and_bad_bytes_fail_with_a_reason(
    gateway, auth, settings, problem
):
    photo = await upload_photo(gateway, auth, b"hello, not an image", "image/png")
    await gateway.post(f"/v1/photos/{photo['id']}/complete", headers=auth)
    failed = await processed(gateway, auth, photo["id"])
    assert failed["status"] == "failed"
    assert "not an image we accept" in failed["failure_reason"]

    other = bearer(settings, OTHER_USER_ID)
    for method, path in (
        ("GET", f"/v1/photos/{photo['id']}"),
        ("POST", f"/v1/photos/{photo['id']}/complete"),
        ("DELETE", f"/v1/photos/{photo['id']}"),
        ("GET", "/v1/photos/not-a-uuid"),
    ):
        problem(await gateway.request(method, path, headers=other), 404)


async def test_media_down_is_a_503_to_retry(make_settings, serve, auth, problem, user_id):
    app = create_app(make_settings())  # nothing listens at media's address
    app.state.principals.remember_user(Principal(user_id))
    async with serve(app) as client:
        down = await client.post(
            "/v1/photos", json={"content_type": "image/png", "size_bytes": 10}, headers=auth
        )
        assert problem(down, 503)["type"].endswith("/service-unavailable")
        assert "Retry-After" in down.headers
        down = await client.get("/v1/photos", headers=auth)
        problem(down, 503)
