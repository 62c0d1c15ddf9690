"""What a picture story call asks and what a valid answer is, independent of
gRPC and of any provider."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fabula_common.errors import InvalidArgument, UpstreamError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fabula_generation.generations.domain import Purpose, Subject

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
# Media hands over its 1024 px rendition: far below this.
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_DIRECTION_CHARS = 1000
MAX_ID_CHARS = 64
# Room the model's answer needs (two short stories and titles, JSON included).
ANSWER_TOKENS = 1400
MAX_TITLE_CHARS = 200
MAX_TEXT_CHARS = 6000

STORY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title_en": {"type": "string"},
        "text_en": {"type": "string"},
        "title_de": {"type": "string"},
        "text_de": {"type": "string"},
    },
    "required": ["title_en", "text_en", "title_de", "text_de"],
    "additionalProperties": False,
}


class BilingualStory(BaseModel):
    """A whole answer: STORY_SCHEMA, with its bounds."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, extra="forbid")

    title_en: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    text_en: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    title_de: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    text_de: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


def parse_story(text: str) -> BilingualStory:
    """The story of a model's answer; UpstreamError saying what is wrong with
    an answer that is no such document."""
    try:
        document = json.loads(text)
    except ValueError:
        raise UpstreamError("the model's picture story was not valid JSON") from None
    try:
        return BilingualStory.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the answer"
        raise UpstreamError(
            f"the model's picture story did not follow the schema ({where}: {first['msg']})"
        ) from None


@dataclass(frozen=True)
class PictureRequest:
    """A validated WritePictureStory request. The recorder reads `user_id`,
    `purpose` and `subject` from it as from a GenerationRequest."""

    user_id: str
    subject: Subject
    image: bytes
    content_type: str
    direction: str
    purpose: Purpose = field(default=Purpose.picture_story, init=False)

    @classmethod
    def validated(
        cls, user_id: str, subject: Subject, image: bytes, content_type: str, direction: str
    ) -> PictureRequest:
        """InvalidArgument naming the first field out of bounds."""
        for name, value in (
            ("user_id", user_id),
            ("subject.kind", subject.kind),
            ("subject.id", subject.id),
        ):
            if not value.strip():
                raise InvalidArgument(f"{name} is required")
            if len(value) > MAX_ID_CHARS or "\x00" in value:
                raise InvalidArgument(f"{name} must be at most {MAX_ID_CHARS} characters")
        if not image:
            raise InvalidArgument("image is required")
        if len(image) > MAX_IMAGE_BYTES:
            raise InvalidArgument(f"image must be at most {MAX_IMAGE_BYTES} bytes")
        if content_type not in IMAGE_TYPES:
            raise InvalidArgument(f"image_content_type must be one of {', '.join(IMAGE_TYPES)}")
        direction = direction.strip()
        if len(direction) > MAX_DIRECTION_CHARS:
            raise InvalidArgument(f"direction must be at most {MAX_DIRECTION_CHARS} characters")
        if "\x00" in direction:
            raise InvalidArgument("direction must not contain NUL characters")
        return cls(user_id, subject, image, content_type, direction)
