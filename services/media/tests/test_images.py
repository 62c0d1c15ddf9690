"""Processing of an upload's bytes (no services): what is accepted, what is
refused with which reason, what the stored images keep."""

from __future__ import annotations

import io

import pytest
from fabula_media.photos.images import ImageRejected, process_image
from PIL import Image

from fabula_media.testing import GPS_LATITUDE, format_of, has_gps, jpeg_with_gps, png, size_of

LIMITS = dict(
    allowed_types=["image/jpeg", "image/png", "image/webp"],
    max_bytes=10 * 1024 * 1024,
    max_pixels=40_000_000,
    thumbnail_sizes=[256, 1024],
)


def test_gps_and_camera_metadata_are_stripped_and_thumbnails_are_webp():
    upload = jpeg_with_gps(1600, 1200)
    assert has_gps(upload)
    result = process_image(upload, **LIMITS)
    assert (result.content_type, result.width, result.height) == ("image/jpeg", 1600, 1200)
    by_name = {r.name: r for r in result.renditions}
    assert set(by_name) == {"original", "thumb_256", "thumb_1024"}
    original = by_name["original"].data
    assert format_of(original) == "JPEG" and size_of(original) == (1600, 1200)
    assert not has_gps(original)
    assert dict(Image.open(io.BytesIO(original)).getexif()) == {}
    assert size_of(by_name["thumb_256"].data) == (256, 192)
    assert size_of(by_name["thumb_1024"].data) == (1024, 768)
    assert {format_of(by_name[n].data) for n in ("thumb_256", "thumb_1024")} == {"WEBP"}
    assert GPS_LATITUDE  # the fixture really carried a position (asserted above)


def test_a_small_image_is_never_enlarged():
    result = process_image(png(300, 200), **LIMITS)
    sizes = {r.name: (r.width, r.height) for r in result.renditions}
    assert sizes == {"original": (300, 200), "thumb_256": (256, 171), "thumb_1024": (300, 200)}


def test_text_renamed_png_is_refused_with_a_reason():
    with pytest.raises(ImageRejected, match="not an image we accept"):
        process_image(b"just some notes, not a picture\n", **LIMITS)


def test_a_format_not_allowed_is_refused():
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "GIF")
    with pytest.raises(ImageRejected, match="not an image we accept"):
        process_image(out.getvalue(), **LIMITS)
    with pytest.raises(ImageRejected, match="not an image we accept"):
        process_image(png(), **{**LIMITS, "allowed_types": ["image/jpeg"]})


def test_a_decompression_bomb_is_refused_before_decoding():
    # 9000 x 9000 of one colour: a few hundred KB that would decode to 81 MB.
    out = io.BytesIO()
    Image.new("L", (9000, 9000)).save(out, "PNG")
    assert len(out.getvalue()) < 1024 * 1024
    with pytest.raises(ImageRejected, match="9000x9000 pixels; the limit is 40 megapixels"):
        process_image(out.getvalue(), **LIMITS)


def test_a_truncated_image_is_refused():
    data = jpeg_with_gps(400, 300)
    with pytest.raises(ImageRejected, match="damaged or incomplete"):
        process_image(data[: len(data) // 2], **LIMITS)


def test_too_many_bytes_and_no_bytes_are_refused():
    with pytest.raises(ImageRejected, match="larger than the 1 MiB limit"):
        process_image(b"x" * (1024 * 1024 + 1), **{**LIMITS, "max_bytes": 1024 * 1024})
    with pytest.raises(ImageRejected, match="empty"):
        process_image(b"", **LIMITS)
