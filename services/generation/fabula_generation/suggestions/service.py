"""Suggestions rules: the rate limit, the model call and what is recorded.

A suggestions call is recorded like any model call (a generation row with
purpose story_suggestions, its UsageRecorded through the outbox, by the
GenerationRecorder). It is metered as cost only: before the model is asked it
reserves its estimated cost, and no generation, with billing under the
generation's id (so a user at the plan's cost limit gets no more, however
many generations are left, and one with no generation left still gets
suggestions); its event names that reservation, and billing settles it by
paying the cost without counting a generation.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass
from typing import Any

from fabula_common.db import Database
from fabula_common.errors import RateLimited

from fabula_generation.generations.structured import StructuredCall
from fabula_generation.providers import GenerationProvider
from fabula_generation.suggestions import repository
from fabula_generation.suggestions.domain import (
    IDEAS_SCHEMA,
    TOKENS_PER_IDEA,
    StoryIdea,
    SuggestionRequest,
    parse_ideas,
)
from fabula_generation.suggestions.offline_ideas import compose_ideas
from fabula_generation.suggestions.prompts import suggestion_messages


@dataclass(frozen=True)
class IdeasQuestion:
    """The structured request (providers.StructuredRequest) for story ideas."""

    request: SuggestionRequest
    schema_name = "story_ideas"

    @property
    def max_tokens(self) -> int:
        return self.request.count * TOKENS_PER_IDEA

    def json_schema(self) -> dict[str, Any]:
        return IDEAS_SCHEMA

    def messages(self) -> list[dict[str, str]]:
        return suggestion_messages(self.request)

    def offline_answer(self) -> dict[str, Any]:
        return {"ideas": [idea.model_dump() for idea in compose_ideas(self.request)]}


class SuggestionCall(StructuredCall):
    """One suggestions call in progress, recorded like a GenerationCall."""

    def __init__(
        self, request: SuggestionRequest, provider: GenerationProvider, generation_id: uuid.UUID
    ) -> None:
        # A cost-only reservation under the generation's id: its usage event
        # settles it, paying the cost and counting no generation.
        super().__init__(request, IdeasQuestion(request), provider, generation_id)


async def suggest(call: SuggestionCall) -> list[StoryIdea]:
    """Ask the provider for the ideas and read its answer; UpstreamError
    (after the answer is kept on the call, so its tokens are billed) when the
    answer is no valid document of ideas."""
    return await call.answer(
        lambda text: parse_ideas(text, call.request.count), "story ideas"
    )


class SuggestionRateLimit:
    """At most `limit` suggestions calls per user in each fixed window of
    `window_seconds`, counted in the database (so across instances)."""

    def __init__(self, db: Database, limit: int, window_seconds: float) -> None:
        self.db = db
        self.limit = limit
        self.window = dt.timedelta(seconds=window_seconds)

    async def admit(self, user_id: str) -> None:
        """Count the call; RateLimited (with the seconds until the window
        frees) when the user's window is full."""
        async with self.db.session_scope() as session:
            wait = await repository.admit(session, user_id, self.limit, self.window)
        if wait is None:
            return
        seconds = max(1, math.ceil(wait))
        raise RateLimited(
            f"too many story suggestions: at most {self.limit} every "
            f"{_duration(self.window)}; retry in {seconds} s",
            retry_after=float(seconds),
        )


def _duration(window: dt.timedelta) -> str:
    seconds = window.total_seconds()
    if seconds == 60:
        return "minute"
    return f"{seconds:g} seconds"
