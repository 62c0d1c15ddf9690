"""Story suggestions (generation service)."""

from __future__ import annotations

from typing import Annotated, Literal

from fabula.generation.v1 import generation_pb2
from fastapi import APIRouter, Query

from fabula_gateway.dependencies import Clients, CurrentUserId
from fabula_gateway.openapi import problem_responses
from fabula_gateway.suggestions.mappers import suggestions_from_proto
from fabula_gateway.suggestions.schemas import Suggestions

router = APIRouter(prefix="/v1/suggestions", tags=["suggestions"])

# The generation service's bounds (fabula_generation.suggestions.domain).
MAX_COUNT = 10
MAX_GENRE_CHARS = 50


@router.get(
    "",
    operation_id="suggest_stories",
    response_model=Suggestions,
    summary="Suggest story ideas",
    description="Ideas for new stories (title, genre, characters, opening line), from the "
    "model through structured output, or from the built-in offline generator when no model "
    "is configured. Each call's cost is recorded in the usage logs as operation "
    "`suggestion` and counts against the plan's monthly cost limit (a user who has spent it "
    "gets a 402), but it uses no generation of the plan. Rate-limited per user (10 a "
    "minute unless configured otherwise).",
    responses=problem_responses(
        401,
        402,
        422,
        429,
        500,
        503,
        s402="The plan's monthly cost limit is spent (`quota` is `cost`); the problem names "
        "the `plan`, the `limit` in US dollars and when it resets (`resets_at`).",
        s429="Too many suggestions in a short time; retry after `Retry-After` seconds.",
    ),
)
async def suggest_stories(
    user_id: CurrentUserId,
    clients: Clients,
    genre: Annotated[
        str,
        Query(max_length=MAX_GENRE_CHARS, description="The genre of every idea; empty: any."),
    ] = "",
    count: Annotated[int, Query(ge=1, le=MAX_COUNT, description="How many ideas.")] = 3,
    locale: Annotated[
        Literal["en", "de"], Query(description="The language of the ideas.")
    ] = "en",
) -> Suggestions:
    reply = await clients.generation.SuggestStories(
        generation_pb2.SuggestStoriesRequest(
            user_id=user_id, genre=genre, count=count, locale=locale
        ),
        # A model call: the deadline of calls that run a model.
        timeout=clients.generation_timeout,
    )
    return suggestions_from_proto(reply)
