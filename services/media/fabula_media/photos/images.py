"""What processing does to an upload's bytes, with Pillow (CPU-bound: the
worker runs it on a thread pool, never on the event loop).

The bytes must really be an allowed image (the format Pillow detects, not the
declared type or a file name), within the byte and pixel limits; the pixel
count is read from the header and checked before anything is decoded, so a
decompression bomb never expands in memory. The stored original is
re-encoded from the pixels alone (orientation applied first), so no metadata
(EXIF with its GPS position, XMP, text chunks) survives; thumbnails are WebP.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# Content type -> Pillow's format name, and back.
FORMATS_BY_TYPE = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
TYPES_BY_FORMAT = {name: kind for kind, name in FORMATS_BY_TYPE.items()}
ORIGINAL = "original"
THUMBNAIL_TYPE = "image/webp"


def thumbnail_name(size: int) -> str:
    return f"thumb_{size}"


class ImageRejected(Exception):
    """The bytes are not an image we accept; the message is for the user."""


@dataclass(frozen=True)
class Encoded:
    name: str
    content_type: str
    width: int
    height: int
    data: bytes


@dataclass(frozen=True)
class Processed:
    content_type: str
    width: int
    height: int
    renditions: list[Encoded]


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:g}"


def process_image(
    data: bytes,
    *,
    allowed_types: list[str],
    max_bytes: int,
    max_pixels: int,
    thumbnail_sizes: list[int],
) -> Processed:
    """The original without metadata and the thumbnails; ImageRejected with a
    reason a user understands when the bytes are refused."""
    if len(data) > max_bytes:
        raise ImageRejected(
            f"The file is larger than the {max_bytes // (1024 * 1024) or max_bytes} "
            f"{'MiB' if max_bytes >= 1024 * 1024 else 'byte'} limit."
        )
    if not data:
        raise ImageRejected("The file is empty.")
    allowed_formats = [FORMATS_BY_TYPE[kind] for kind in allowed_types]
    readable = ", ".join(sorted(allowed_formats))
    with warnings.catch_warnings():
        # Pillow's own bomb check is a warning below twice its limit: ours is exact.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            # Only the header is read here; `formats` keeps Pillow from trying
            # any decoder but the allowed ones.
            image = Image.open(io.BytesIO(data), formats=allowed_formats)
        except UnidentifiedImageError:
            raise ImageRejected(
                f"The file is not an image we accept ({readable})."
            ) from None
        except Image.DecompressionBombError:
            raise ImageRejected(
                f"The image has too many pixels; the limit is {_megapixels(max_pixels)} megapixels."
            ) from None
        width, height = image.size
        if width * height > max_pixels:
            raise ImageRejected(
                f"The image is {width}x{height} pixels; the limit is "
                f"{_megapixels(max_pixels)} megapixels."
            )
        content_type = TYPES_BY_FORMAT[image.format]
        try:
            image.load()
            # The first frame of an animation; orientation from EXIF applied
            # to the pixels before the EXIF is dropped.
            image = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            raise ImageRejected("The image is damaged or incomplete and could not be read.") from None
    original = _encode_original(image, content_type)
    renditions = [original]
    for size in thumbnail_sizes:
        renditions.append(_thumbnail(image, size))
    return Processed(content_type, image.width, image.height, renditions)


def _encode_original(image: Image.Image, content_type: str) -> Encoded:
    """The pixels in the upload's format, with no metadata (only the colour
    profile, which is not personal and keeps colours right)."""
    out = io.BytesIO()
    icc = image.info.get("icc_profile")
    extra = {"icc_profile": icc} if icc else {}
    if content_type == "image/jpeg":
        image = image if image.mode in ("RGB", "L", "CMYK") else image.convert("RGB")
        image.save(out, "JPEG", quality=92, optimize=True, **extra)
    elif content_type == "image/png":
        image.save(out, "PNG", optimize=True, **extra)
    else:
        image.save(out, "WEBP", quality=90, **extra)
    return Encoded(ORIGINAL, content_type, image.width, image.height, out.getvalue())


def _thumbnail(image: Image.Image, size: int) -> Encoded:
    """At most `size` px on the longer side (never enlarged), as WebP."""
    copy = image.copy()
    if copy.mode not in ("RGB", "RGBA"):
        copy = copy.convert("RGBA" if "A" in copy.getbands() or "transparency" in copy.info else "RGB")
    copy.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    copy.save(out, "WEBP", quality=82, method=4)
    return Encoded(thumbnail_name(size), THUMBNAIL_TYPE, copy.width, copy.height, out.getvalue())
