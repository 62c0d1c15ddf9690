"""gRPC edge of fabula.generation.v1.PicturesService: proto <-> domain, the
moderation of child-safe calls, the metering and the record."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from fabula.generation.v1 import pictures_pb2, pictures_pb2_grpc
from fabula_common.context import is_child_safe

from fabula_generation.generations.domain import Subject
from fabula_generation.generations.metering import Meter
from fabula_generation.generations.servicer import (
    GenerationRecorder,
    delivery_from_proto,
    requested_generation_id,
    usage_to_proto,
)
from fabula_generation.generations.structured import reserve_and_start
from fabula_generation.pictures.domain import PictureRequest
from fabula_generation.pictures.facts import read_facts
from fabula_generation.pictures.service import PictureCall, write_story
from fabula_generation.providers import GenerationProvider
from fabula_generation.safety.moderation import Moderator, Verdict, require_suitable


class PicturesServicer(pictures_pb2_grpc.PicturesServiceServicer):
    """Validate (the bytes must be an image), moderate a child-safe account's
    direction (refused: nothing reserved, nothing recorded), reserve one
    generation under the generation's id, record the call as started, ask
    the provider, moderate a child-safe answer in both languages, record the
    outcome and usage (whose event settles the reservation; the owner's
    GenerationDelivered counts it)."""

    def __init__(
        self,
        provider: GenerationProvider,
        recorder: GenerationRecorder,
        meter: Meter,
        moderator: Moderator,
    ) -> None:
        self.provider = provider
        self.recorder = recorder
        self.meter = meter
        self.moderator = moderator

    async def WritePictureStory(
        self, request: pictures_pb2.PictureStoryRequest, context: grpc.aio.ServicerContext
    ) -> pictures_pb2.PictureStoryResponse:
        generation_id = requested_generation_id(request) or uuid.uuid4()  # type: ignore[arg-type]
        picture = PictureRequest.validated(
            request.user_id,
            Subject(request.subject.kind, request.subject.id),
            request.image,
            request.image_content_type,
            request.direction,
        )
        delivery = delivery_from_proto(request)  # type: ignore[arg-type]
        facts = await asyncio.to_thread(read_facts, picture.image)
        child_safe = is_child_safe()
        verdicts: list[Verdict] = []
        if child_safe:
            verdicts += await require_suitable(self.moderator, {"direction": picture.direction})
        call = PictureCall(picture, facts, self.provider, generation_id, delivery)
        await reserve_and_start(self.recorder, self.meter, call, cost_only=False)
        async with self.recorder.recording(call) as recording:  # type: ignore[arg-type]
            story = await write_story(call)
            if child_safe:
                verdicts += await require_suitable(
                    self.moderator,
                    {
                        "story_en": f"{story.title_en}\n{story.text_en}",
                        "story_de": f"{story.title_de}\n{story.text_de}",
                    },
                )
        recorded = recording.recorded
        assert recorded is not None
        return pictures_pb2.PictureStoryResponse(
            generation_id=str(recorded.id),
            title_en=story.title_en,
            text_en=story.text_en,
            title_de=story.title_de,
            text_de=story.text_de,
            provider=self.provider.name,
            model=self.provider.model,
            is_language_model=self.provider.is_language_model,
            usage=usage_to_proto(recorded),
            moderation=pictures_pb2.PictureModeration(
                checked=child_safe,
                checker=self.moderator.name if child_safe else "",
                flagged=False,
                categories=sorted({c for verdict in verdicts for c in verdict.categories}),
            ),
            duration_ms=recorded.duration_ms,
        )
