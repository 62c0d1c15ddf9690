"""What a suggestions call asks and what a valid answer is, independent of
gRPC and of any provider."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fabula_common.errors import InvalidArgument, UpstreamError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fabula_generation.generations.domain import Purpose, Subject

DEFAULT_COUNT = 3
MAX_COUNT = 10
MAX_GENRE_CHARS = 50
MAX_USER_ID_CHARS = 64
LOCALES = ("en", "de")
DEFAULT_LOCALE = "en"
# Room the model's answer needs per idea, in tokens (JSON included), with margin.
TOKENS_PER_IDEA = 160

# Bounds on what the model may answer: past them the answer is not an idea.
MAX_TITLE_CHARS = 200
MAX_IDEA_GENRE_CHARS = 100
MAX_CHARACTERS = 8
MAX_CHARACTER_CHARS = 200
MAX_OPENING_LINE_CHARS = 1000

# The answer's JSON schema, as the model is held to it (structured output):
# every property required, nothing else allowed. Lengths and counts are
# checked on the answer (StoryIdeas) rather than asked of the schema, whose
# keywords beyond types a provider may not support.
IDEAS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ideas": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "genre": {"type": "string"},
                    "characters": {"type": "array", "items": {"type": "string"}},
                    "opening_line": {"type": "string"},
                },
                "required": ["title", "genre", "characters", "opening_line"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["ideas"],
    "additionalProperties": False,
}


class StoryIdea(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, extra="forbid")

    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    genre: str = Field(max_length=MAX_IDEA_GENRE_CHARS)
    characters: list[str] = Field(max_length=MAX_CHARACTERS)
    opening_line: str = Field(min_length=1, max_length=MAX_OPENING_LINE_CHARS)


class StoryIdeas(BaseModel):
    """A whole answer: IDEAS_SCHEMA, with its bounds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ideas: list[StoryIdea] = Field(min_length=1)


def parse_ideas(text: str, count: int) -> list[StoryIdea]:
    """The ideas of a model's answer, at most `count` (a model may write
    more than asked); UpstreamError saying what is wrong with an answer that
    is no such document."""
    try:
        document = json.loads(text)
    except ValueError:
        raise UpstreamError("the model's story ideas were not valid JSON") from None
    try:
        answer = StoryIdeas.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the answer"
        raise UpstreamError(
            f"the model's story ideas did not follow the schema ({where}: {first['msg']})"
        ) from None
    # Strings arrive stripped (str_strip_whitespace); blank names are dropped.
    return [
        idea.model_copy(update={"characters": [name for name in idea.characters if name]})
        for idea in answer.ideas[:count]
    ]


def normalised_locale(locale: str) -> str:
    """"en" or "de" (a region such as "de-AT" is dropped); empty: en."""
    language = locale.strip().lower().replace("_", "-").split("-", 1)[0]
    if not language:
        return DEFAULT_LOCALE
    if language not in LOCALES:
        raise InvalidArgument(f"locale must be one of {', '.join(LOCALES)}")
    return language


@dataclass(frozen=True)
class SuggestionRequest:
    """A validated SuggestStories request. The recorder reads `user_id`,
    `purpose` and `subject` from it as from a GenerationRequest."""

    user_id: str
    genre: str
    count: int
    locale: str
    # Seeds the offline generator: the same seed, the same ideas.
    seed: int = 0
    purpose: Purpose = field(default=Purpose.story_suggestions, init=False)

    @classmethod
    def validated(
        cls, user_id: str, genre: str, count: int, locale: str, *, seed: int = 0
    ) -> SuggestionRequest:
        """InvalidArgument naming the first field out of bounds."""
        if not user_id.strip():
            raise InvalidArgument("user_id is required")
        if len(user_id) > MAX_USER_ID_CHARS or "\x00" in user_id:
            raise InvalidArgument(f"user_id must be at most {MAX_USER_ID_CHARS} characters")
        genre = " ".join(genre.split())
        if len(genre) > MAX_GENRE_CHARS:
            raise InvalidArgument(f"genre must be at most {MAX_GENRE_CHARS} characters")
        if "\x00" in genre:
            raise InvalidArgument("genre must not contain NUL characters")
        if count == 0:
            count = DEFAULT_COUNT
        if not 1 <= count <= MAX_COUNT:
            raise InvalidArgument(f"count must be between 1 and {MAX_COUNT} (0: {DEFAULT_COUNT})")
        return cls(user_id, genre, count, normalised_locale(locale), seed)

    @property
    def subject(self) -> Subject:
        """Ideas are about no story: the usage is the user's own."""
        return Subject(kind="user", id=self.user_id)
