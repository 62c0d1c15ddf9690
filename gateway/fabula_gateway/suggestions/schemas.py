"""Story suggestions: responses."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fabula_gateway.stories.schemas import GeneratedBy


class StoryIdea(BaseModel):
    """An idea for a story: what POST /v1/stories needs to start it."""

    title: str
    genre: str
    characters: list[str] = Field(description='Each as "Name, a short description".')
    opening_line: str


class Suggestions(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ideas": [
                        {
                            "title": "The Lantern Keeper",
                            "genre": "mystery",
                            "characters": ["Mara, a lighthouse keeper", "Tom, her brother"],
                            "opening_line": "The night the bell rang again, Mara was the "
                            "only one awake on the island.",
                        }
                    ],
                    "generated_by": {
                        "provider": "mistral",
                        "model": "mistral-small-latest",
                        "is_language_model": True,
                    },
                }
            ]
        }
    )

    ideas: list[StoryIdea]
    generated_by: GeneratedBy = Field(
        description="Who wrote the ideas: the built-in `offline` generator is not a "
        "language model."
    )
