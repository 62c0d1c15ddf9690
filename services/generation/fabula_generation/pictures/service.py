"""The picture story call: the question the model gets (the image as a data
URL content chunk beside the instructions), the offline answer, and reading
the answer."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from fabula_generation.generations.domain import Delivery
from fabula_generation.generations.structured import StructuredCall
from fabula_generation.pictures.domain import (
    ANSWER_TOKENS,
    STORY_SCHEMA,
    BilingualStory,
    PictureRequest,
    parse_story,
)
from fabula_generation.pictures.facts import ImageFacts
from fabula_generation.pictures.offline_story import compose_story
from fabula_generation.providers import GenerationProvider

SYSTEM_PROMPT = (
    "You write short stories about pictures people draw. Look at the image and write "
    "one short story (100 to 180 words) about what it shows, for a general audience, "
    "once in English and once in German: the same story, in natural German rather than "
    "a word-for-word translation, each with its own title. Answer with a JSON document "
    "with title_en, text_en, title_de and text_de."
)
# What an image costs a vision model, roughly, before it reports its usage.
IMAGE_PROMPT_TOKENS = 1000


@dataclass(frozen=True)
class PictureQuestion:
    """The structured request (providers.StructuredRequest) for a picture story."""

    request: PictureRequest
    facts: ImageFacts
    # Seeds the offline generator: the same seed, the same story.
    seed: str
    schema_name = "picture_story"
    max_tokens = ANSWER_TOKENS

    def json_schema(self) -> dict[str, Any]:
        return STORY_SCHEMA

    def messages(self) -> list[dict[str, Any]]:
        task = "Write a story about this picture."
        if self.request.direction:
            task += f" The artist's wish for the story: {self.request.direction}"
        data = base64.b64encode(self.request.image).decode("ascii")
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": task},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:{self.request.content_type};base64,{data}"},
                    },
                ],
            },
        ]

    def offline_answer(self) -> dict[str, str]:
        return compose_story(self.facts, self.request.direction, self.seed)


class PictureCall(StructuredCall):
    """One picture story call in progress, recorded like a GenerationCall."""

    extra_prompt_tokens = IMAGE_PROMPT_TOKENS

    def __init__(
        self,
        request: PictureRequest,
        facts: ImageFacts,
        provider: GenerationProvider,
        generation_id: uuid.UUID,
        delivery: Delivery,
    ) -> None:
        question = PictureQuestion(request, facts, seed=request.subject.id)
        super().__init__(request, question, provider, generation_id, delivery=delivery)


async def write_story(call: PictureCall) -> BilingualStory:
    """Ask the provider and read its answer; UpstreamError (after the answer
    is kept on the call, so its tokens are billed) when it is no story."""
    return await call.answer(parse_story, "picture story texts")
