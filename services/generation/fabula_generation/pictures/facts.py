"""Simple facts of an image (size, orientation, main colours), read with
Pillow: what the offline generator writes about, and a check that the bytes
are an image at all. CPU work: callers run it in a thread."""

from __future__ import annotations

import io
from dataclasses import dataclass

from fabula_common.errors import InvalidArgument
from PIL import Image, UnidentifiedImageError

# Named colours (sRGB) with their English and German names: the nearest one
# names a colour of the image.
COLOURS: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("red", "rot", (200, 30, 30)),
    ("orange", "orange", (240, 140, 20)),
    ("yellow", "gelb", (240, 220, 40)),
    ("green", "grün", (40, 160, 60)),
    ("blue", "blau", (40, 80, 200)),
    ("purple", "lila", (130, 50, 160)),
    ("pink", "rosa", (240, 150, 190)),
    ("brown", "braun", (120, 75, 40)),
    ("black", "schwarz", (15, 15, 15)),
    ("grey", "grau", (128, 128, 128)),
    ("white", "weiß", (245, 245, 245)),
)
_MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class Colour:
    en: str
    de: str


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    # Most of the picture first; at most three, each named once.
    colours: tuple[Colour, ...]

    @property
    def orientation(self) -> str:
        if self.width > self.height * 1.2:
            return "wide"
        if self.height > self.width * 1.2:
            return "tall"
        return "square"


def _nearest(rgb: tuple[int, int, int]) -> Colour:
    def distance(named: tuple[str, str, tuple[int, int, int]]) -> int:
        return sum((a - b) ** 2 for a, b in zip(rgb, named[2], strict=True))

    en, de, _ = min(COLOURS, key=distance)
    return Colour(en, de)


def read_facts(image: bytes) -> ImageFacts:
    """The image's facts; InvalidArgument when the bytes are no image Pillow reads."""
    try:
        with Image.open(io.BytesIO(image)) as picture:
            if picture.width * picture.height > _MAX_PIXELS:
                raise InvalidArgument("image has too many pixels")
            width, height = picture.size
            small = picture.convert("RGB")
            small.thumbnail((64, 64))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise InvalidArgument("image is not a readable JPEG, PNG or WebP image") from exc
    counts: dict[Colour, int] = {}
    for count, rgb in small.getcolors(64 * 64) or []:
        colour = _nearest(rgb)
        counts[colour] = counts.get(colour, 0) + count
    ranked = sorted(counts, key=lambda colour: (-counts[colour], colour.en))
    return ImageFacts(width, height, tuple(ranked[:3]))
