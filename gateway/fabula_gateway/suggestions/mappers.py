"""Story suggestions: proto → response schemas."""

from __future__ import annotations

from fabula.generation.v1 import generation_pb2

from fabula_gateway.stories.schemas import GeneratedBy
from fabula_gateway.suggestions.schemas import StoryIdea, Suggestions


def suggestions_from_proto(reply: generation_pb2.SuggestStoriesResponse) -> Suggestions:
    return Suggestions(
        ideas=[
            StoryIdea(
                title=idea.title,
                genre=idea.genre,
                characters=list(idea.characters),
                opening_line=idea.opening_line,
            )
            for idea in reply.ideas
        ],
        generated_by=GeneratedBy(
            provider=reply.provider, model=reply.model, is_language_model=reply.is_language_model
        ),
    )
