"""Photos end to end through the real stack (local storage, the media worker
as its own process): a PNG uploaded through the URL the API returned,
completed, processed with thumbnails and no GPS; a JPEG's GPS position
stripped; a text file named .png failed with a reason."""

from __future__ import annotations

import io
import os
import signal
import time

import pytest
from fabula_media.testing import format_of, has_gps, jpeg_with_gps, size_of
from PIL import Image, PngImagePlugin

pytestmark = pytest.mark.e2e


def png_with_text(width: int = 640, height: int = 480) -> bytes:
    """A PNG carrying a text chunk with a position, as some editors write."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "52.5200 N, 13.4050 E")
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 160, 90)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def upload(api, writer, data: bytes, content_type: str, filename: str) -> dict:
    return wait_processed(api, writer, upload_and_complete(api, writer, data, content_type, filename))


def upload_and_complete(api, writer, data: bytes, content_type: str, filename: str) -> str:
    """The photo's id, once uploaded and completed (its processing queued)."""
    created = api.http.post(
        "/v1/photos",
        json={"content_type": content_type, "size_bytes": len(data), "filename": filename},
        headers=writer.headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["photo"]["status"] == "pending"
    target = body["upload"]
    # Exactly as a client would: the returned URL, method and headers (or form fields).
    if target["method"] == "PUT":
        sent = api.http.put(target["url"], content=data, headers=target["headers"])
    else:
        sent = api.http.post(
            target["url"], data=target["fields"], files={"file": (filename, data, content_type)}
        )
    assert sent.status_code in (200, 201, 204), sent.text
    completed = api.http.post(f"/v1/photos/{body['photo']['id']}/complete", headers=writer.headers)
    assert completed.status_code == 200, completed.text
    return body["photo"]["id"]


def wait_processed(api, writer, photo_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        photo = api.http.get(f"/v1/photos/{photo_id}", headers=writer.headers).json()
        if photo["status"] in ("completed", "failed"):
            return photo
        assert time.monotonic() < deadline, f"photo still {photo['status']}:\n{api.stack.log_tail()}"
        time.sleep(0.1)


def test_a_png_is_processed_with_downloadable_thumbnails(api):
    writer = api.register()
    photo = upload(api, writer, png_with_text(640, 480), "image/png", "garden.png")
    assert photo["status"] == "completed", photo
    assert (photo["content_type"], photo["width"], photo["height"]) == ("image/png", 640, 480)
    renditions = {r["name"]: r for r in photo["renditions"]}
    assert set(renditions) == {"original", "thumb_256", "thumb_1024"}
    for name, size in (("thumb_256", (256, 192)), ("thumb_1024", (640, 480))):
        thumb = api.http.get(renditions[name]["url"])
        assert thumb.status_code == 200
        assert format_of(thumb.content) == "WEBP" and size_of(thumb.content) == size
    original = api.http.get(renditions["original"]["url"])
    assert format_of(original.content) == "PNG"
    assert "Location" not in Image.open(io.BytesIO(original.content)).info

    listed = api.http.get("/v1/photos", headers=writer.headers).json()
    assert [p["id"] for p in listed["items"]] == [photo["id"]]


def test_a_jpegs_gps_position_is_stripped(api):
    writer = api.register()
    data = jpeg_with_gps(1200, 900)
    assert has_gps(data)
    photo = upload(api, writer, data, "image/jpeg", "holiday.jpg")
    assert photo["status"] == "completed", photo
    original = {r["name"]: r for r in photo["renditions"]}["original"]
    assert not has_gps(api.http.get(original["url"]).content)


def test_a_text_file_named_png_fails_with_a_reason(api):
    writer = api.register()
    photo = upload(api, writer, b"Dear diary, today I renamed a file.\n", "image/png", "diary.png")
    assert photo["status"] == "failed"
    assert "not an image we accept" in photo["failure_reason"]
    assert photo["renditions"] == []
    # Another user does not see it.
    stranger = api.register()
    assert api.http.get(f"/v1/photos/{photo['id']}", headers=stranger.headers).status_code == 404


def test_a_photo_whose_worker_is_killed_mid_processing_is_processed_after_all(
    start_private_stack,
):
    """kill -9 of the media worker while it works on a photo: the photo is not
    left in processing; once the launcher has started the worker again, the
    photo is processed (queued again by the stuck-photo sweep, or its event
    redelivered) and completes with every thumbnail."""
    api = start_private_stack(
        # Longer than one attempt takes on a slow, shared machine (a 6000 px
        # PNG and its 4096 px thumbnail: seconds): a shorter limit queues
        # attempts still running again until the photo runs out of them.
        MEDIA_PROCESSING_TIMEOUT_SECONDS="20",
        MEDIA_PROCESSING_MAX_ATTEMPTS="5",
        MEDIA_SWEEP_SECONDS="1",
        # A large image and a large thumbnail: seconds of work to be killed in.
        MEDIA_THUMBNAIL_SIZES="256,1024,4096",
    )
    writer = api.register()
    large = io.BytesIO()
    Image.linear_gradient("L").resize((6000, 6000)).convert("RGB").save(large, "PNG")
    photo_id = upload_and_complete(api, writer, large.getvalue(), "image/png", "mural.png")

    deadline = time.monotonic() + 30
    while (status := api.http.get(f"/v1/photos/{photo_id}", headers=writer.headers).json()[
        "status"
    ]) != "processing":
        assert status == "uploaded", f"the worker finished before it could be killed: {status}"
        assert time.monotonic() < deadline, "the photo never started processing"
        time.sleep(0.02)
    worker = api.stack.children["media.worker"]
    os.kill(worker, signal.SIGKILL)
    api.stack.wait_restarted("media.worker", worker, timeout=30)

    photo = wait_processed(api, writer, photo_id, timeout=90)
    assert photo["status"] == "completed", photo
    assert {r["name"] for r in photo["renditions"]} == {
        "original",
        "thumb_256",
        "thumb_1024",
        "thumb_4096",
    }
    assert (photo["width"], photo["height"]) == (6000, 6000)
