"""gRPC edge of SuggestStories: proto <-> domain, the rate limit, the record."""

from __future__ import annotations

import uuid

import grpc
from fabula.generation.v1 import generation_pb2, generation_pb2_grpc
from fabula_common.context import is_child_safe

from fabula_generation.generations.metering import Meter
from fabula_generation.generations.structured import reserve_and_start
from fabula_generation.generations.servicer import GenerationRecorder, usage_to_proto
from fabula_generation.providers import GenerationProvider
from fabula_generation.safety.moderation import moderator_for, require_suitable
from fabula_generation.suggestions.domain import SuggestionRequest
from fabula_generation.suggestions.service import SuggestionCall, SuggestionRateLimit, suggest


class SuggestionsServicer(generation_pb2_grpc.GenerationServiceServicer):
    """SuggestStories, composed into the GenerationService servicer (app.py).
    Validate, admit under the user's rate limit, reserve the call's cost (and
    no generation) with billing (a call refused by either costs nothing and
    is not recorded), record the call as started, ask the provider, record
    its outcome and usage, whose event settles the reservation."""

    def __init__(
        self,
        provider: GenerationProvider,
        recorder: GenerationRecorder,
        meter: Meter,
        rate_limit: SuggestionRateLimit,
    ) -> None:
        self.suggestions_provider = provider
        self.suggestions_recorder = recorder
        self.suggestions_meter = meter
        self.suggestions_rate_limit = rate_limit
        self.suggestions_moderator = moderator_for(provider)

    async def SuggestStories(
        self, request: generation_pb2.SuggestStoriesRequest, context: grpc.aio.ServicerContext
    ) -> generation_pb2.SuggestStoriesResponse:
        generation_id = uuid.uuid4()
        suggestion = SuggestionRequest.validated(
            request.user_id,
            request.genre,
            request.count,
            request.locale,
            # The offline generator's seed: each call its own ideas.
            seed=generation_id.int >> 64,
        )
        child_safe = is_child_safe()
        if child_safe:
            # The genre is the user's words: refused before anything is counted.
            await require_suitable(self.suggestions_moderator, {"direction": suggestion.genre})
        await self.suggestions_rate_limit.admit(suggestion.user_id)
        provider, recorder = self.suggestions_provider, self.suggestions_recorder
        meter = self.suggestions_meter
        call = SuggestionCall(suggestion, provider, generation_id)
        # Before the model is asked: a user at the plan's cost limit is refused
        # (QuotaExceeded) with nothing spent or recorded.
        await reserve_and_start(recorder, meter, call, cost_only=True)
        async with recorder.recording(call) as recording:  # type: ignore[arg-type]
            ideas = await suggest(call)
            if child_safe:
                await require_suitable(
                    self.suggestions_moderator,
                    {"story": "\n".join(
                        " ".join((idea.title, idea.genre, *idea.characters, idea.opening_line))
                        for idea in ideas
                    )},
                )
        assert recording.recorded is not None
        return generation_pb2.SuggestStoriesResponse(
            ideas=[
                generation_pb2.StoryIdea(
                    title=idea.title,
                    genre=idea.genre,
                    characters=idea.characters,
                    opening_line=idea.opening_line,
                )
                for idea in ideas
            ],
            generation_id=str(recording.recorded.id),
            provider=provider.name,
            model=provider.model,
            is_language_model=provider.is_language_model,
            usage=usage_to_proto(recording.recorded),
        )
