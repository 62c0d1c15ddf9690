"""Tutorials, drawings and picture stories: request bodies (with their
limits) and responses."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fabula_gateway.schemas import NoNul, RequestBody
from fabula_gateway.stories.schemas import GeneratedBy

Language = Literal["en", "de"]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50), NoNul]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul]
Description = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), NoNul]
Instruction = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), NoNul]
Url = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), NoNul]
PhotoId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoNul]
Direction = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000), NoNul]


class Bilingual(BaseModel):
    """A text in English and German (both required)."""

    en: str
    de: str


class TitleText(RequestBody):
    en: Title
    de: Title


class DescriptionText(RequestBody):
    en: Description
    de: Description


class InstructionText(RequestBody):
    en: Instruction
    de: Instruction


class StepInput(RequestBody):
    instruction: InstructionText
    image_url: Url = Field("", description="An http(s) URL; empty: none.")


class TutorialCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "category": "animals",
                    "title": {"en": "A Fish", "de": "Ein Fisch"},
                    "description": {"en": "A simple fish.", "de": "Ein einfacher Fisch."},
                    "thumbnail_url": "https://example.com/fish.png",
                    "steps": [
                        {"instruction": {"en": "Draw an oval.", "de": "Zeichne ein Oval."}},
                    ],
                }
            ]
        }
    )

    category: Category
    title: TitleText
    description: DescriptionText
    thumbnail_url: Url = ""
    steps: list[StepInput] = Field(min_length=1, max_length=50)


class TutorialUpdate(RequestBody):
    """Changes the fields sent (steps as a whole); the others stay."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"title": {"en": "Draw a cat", "de": "Zeichne eine Katze"}}]}
    )

    category: Category | None = None
    title: TitleText | None = None
    description: DescriptionText | None = None
    thumbnail_url: Url | None = None
    steps: list[StepInput] | None = Field(None, min_length=1, max_length=50)


class TutorialStep(BaseModel):
    step_number: int
    instruction: str
    image_url: str


class Tutorial(BaseModel):
    """A tutorial in the language asked for."""

    id: str
    category: str
    lang: Language
    title: str
    description: str
    thumbnail_url: str
    total_steps: int
    steps: list[TutorialStep] | None = Field(
        None, description="With GET /v1/tutorials/{id}; absent in lists."
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class TutorialList(BaseModel):
    items: list[Tutorial]


class BilingualStep(BaseModel):
    step_number: int
    instruction: Bilingual
    image_url: str


class BilingualTutorial(BaseModel):
    """A tutorial with both languages, as superusers write it."""

    id: str
    category: str
    title: Bilingual
    description: Bilingual
    thumbnail_url: str
    total_steps: int
    steps: list[BilingualStep]
    created_at: dt.datetime
    updated_at: dt.datetime


class DrawingCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"photo_id": "<a completed photo's id>", "tutorial_id": None}]}
    )

    photo_id: PhotoId = Field(description="A completed photo of yours (POST /v1/photos).")
    tutorial_id: str | None = Field(None, description="The tutorial followed, if any.")


class DrawingEditCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"photo_id": "<a completed photo's id>"}]})

    photo_id: PhotoId = Field(description="A completed photo of yours: the edited version.")


class PictureImage(BaseModel):
    """The picture a story is about, ready to show: URLs signed for a while."""

    url: str = Field(description="The picture at display size (the largest thumbnail up to "
                     "1024 px, else the original), until `expires_at`.")
    thumbnail_url: str = Field(description="The smallest thumbnail, until `expires_at`.")
    expires_at: dt.datetime


class DrawingVersion(BaseModel):
    id: str
    photo_id: str
    version: int = Field(description="1.. in order.")
    image_url: str = Field(description="The photo's resource: GET it for time-limited URLs.")
    created_at: dt.datetime


class Drawing(BaseModel):
    id: str
    photo_id: str
    tutorial_id: str | None
    image_url: str | None = Field(
        description="The photo's resource (GET it for time-limited URLs); null once the "
        "photo was deleted."
    )
    photo_available: bool
    image: PictureImage | None = Field(
        None,
        description="Time-limited URLs of the newest version's picture (the last edit, else "
        "the upload), to show in a gallery; null when there is none or the media service did "
        "not answer in time.",
    )
    edits: list[DrawingVersion]
    picture_story_count: int
    created_at: dt.datetime
    updated_at: dt.datetime


class DrawingPage(BaseModel):
    items: list[Drawing]
    next_cursor: str | None


class PictureStoryCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"direction": "the fox finds a friend"}]}
    )

    direction: Direction = Field("", description="What the story should be about; optional.")


class PictureStoryUpdate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"is_favorite": True}]})

    is_favorite: bool


class Moderation(BaseModel):
    checked: bool = Field(description="True when the account is child-safe and a check ran.")
    checker: str = Field(description="`mistral` or `offline-wordlist` (a small word list).")
    flagged: bool
    categories: list[str]


class PictureStory(BaseModel):
    id: str
    drawing_id: str
    photo_id: str
    image_url: str = Field(description="The photo's resource: GET it for time-limited URLs.")
    image: PictureImage | None = Field(
        None,
        description="Time-limited URLs of the picture, to show beside the story; null when "
        "the photo was deleted or the media service did not answer in time (the story is "
        "answered all the same).",
    )
    title: Bilingual
    text: Bilingual
    direction: str
    generation_time_ms: int
    is_favorite: bool
    moderation: Moderation
    generated_by: GeneratedBy
    created_at: dt.datetime
    updated_at: dt.datetime


class PictureStoryPage(BaseModel):
    items: list[PictureStory]
    next_cursor: str | None
