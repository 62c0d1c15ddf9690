"""A story's memory, author's note, favourite mark, lore entries and the
model's context: request bodies (with their limits) and responses."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from fabula_gateway.schemas import NoNul, RequestBody
from fabula_gateway.stories.schemas import Title

# Trimmed before the limit applies; empty clears.
Memory = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000), NoNul]
AuthorsNote = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2_000), NoNul]
LoreKey = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
]
LoreText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4_000), NoNul
]
Priority = Annotated[int, Field(ge=-1000, le=1000)]
SecondaryLogic = Literal["and_any", "and_all", "not_any"]

_SECONDARY_LOGIC = (
    "How `secondary_keys` refine a match: `and_any` (at least one must also appear), "
    "`and_all` (all must), `not_any` (none may)."
)


class StoryUpdate(RequestBody):
    """The fields sent change; the others stay."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "memory": "Mara is the keeper's daughter. She cannot swim.",
                    "authors_note": "Keep the tone quiet and eerie.",
                    "is_favorite": True,
                }
            ]
        }
    )

    title: Title | None = None
    memory: Memory | None = Field(
        None, description="Always shown to the model. Empty or null clears it."
    )
    authors_note: AuthorsNote | None = Field(
        None, description="Shown near the end of the model's context. Empty or null clears it."
    )
    is_favorite: bool | None = None

    @model_validator(mode="after")
    def _title_and_favorite_are_not_null(self) -> StoryUpdate:
        for name in ("title", "is_favorite"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


class LoreEntryCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "keys": ["astrolabe"],
                    "text": "The astrolabe is brass and always points at what was lost.",
                    "priority": 10,
                }
            ]
        }
    )

    keys: list[LoreKey] = Field(
        default_factory=list,
        max_length=20,
        description="Words or phrases; the entry is shown to the model when one appears in "
        "the recent story (case-insensitive, whole words). At least one unless `constant`.",
    )
    secondary_keys: list[LoreKey] = Field(default_factory=list, max_length=20)
    secondary_logic: SecondaryLogic = Field("and_any", description=_SECONDARY_LOGIC)
    text: LoreText
    priority: Priority = Field(0, description="Higher first when the budget cannot hold all.")
    constant: bool = Field(False, description="Always shown, before keyed entries.")
    enabled: bool = True

    @model_validator(mode="after")
    def _keyed_unless_constant(self) -> LoreEntryCreate:
        if not self.keys and not self.constant:
            raise ValueError("keys must have at least one key unless the entry is constant")
        return self


class LoreEntryUpdate(RequestBody):
    """The fields sent change; the others stay. None may be null."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"priority": 20, "enabled": False}]}
    )

    keys: list[LoreKey] | None = Field(None, max_length=20)
    secondary_keys: list[LoreKey] | None = Field(None, max_length=20)
    secondary_logic: SecondaryLogic | None = Field(None, description=_SECONDARY_LOGIC)
    text: LoreText | None = None
    priority: Priority | None = None
    constant: bool | None = None
    enabled: bool | None = None

    @model_validator(mode="after")
    def _something_and_no_nulls(self) -> LoreEntryUpdate:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{nulls[0]} may not be null")
        return self


class LoreEntry(BaseModel):
    id: str
    story_id: str
    keys: list[str]
    secondary_keys: list[str]
    secondary_logic: SecondaryLogic
    text: str
    priority: int
    constant: bool
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class LoreEntryList(BaseModel):
    items: list[LoreEntry] = Field(description="By priority (highest first), then oldest first.")


class ContextLore(BaseModel):
    entry_id: str
    text: str
    tokens: int
    matched: str = Field(description='Why it is included: "constant", or the key that matched.')


class ContextSegment(BaseModel):
    position: int
    segment_id: str
    text: str = Field(description="As sent: its start may be cut when only part of it fits.")
    tokens: int
    truncated: bool


class ContextBudget(BaseModel):
    max_tokens: int = Field(description="Approximate tokens (characters / 4) the context may use.")
    used_tokens: int
    segments_omitted: int = Field(
        description="Segments of the followed path before the ones kept, left out for the budget."
    )
    lore_omitted: list[str] = Field(description="Ids of lore entries that matched but did not fit.")


class PromptMessage(BaseModel):
    role: str
    content: str


class StoryContext(BaseModel):
    """What the model would be given for the story's next segment."""

    memory: str
    lore: list[ContextLore] = Field(description="In the order they are sent: constant first.")
    segments: list[ContextSegment] = Field(description="Oldest first.")
    authors_note: str
    direction: str
    budget: ContextBudget
    prompt: list[PromptMessage] = Field(
        description="The messages the generation service would send the model."
    )
