"""A story's memory, author's note and favourite mark, its lore entries and
the model's context for its next segment (stories service)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fabula.stories.v1 import stories_pb2
from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from fabula_gateway.dependencies import Clients, CurrentUserId, JsonBody, StoryId
from fabula_gateway.mappers import to_datetime
from fabula_gateway.openapi import problem_responses
from fabula_gateway.problems import NOT_FOUND, ProblemError
from fabula_gateway.stories.lore_schemas import (
    ContextBudget,
    ContextLore,
    ContextSegment,
    LoreEntry,
    LoreEntryCreate,
    LoreEntryList,
    LoreEntryUpdate,
    PromptMessage,
    SecondaryLogic,
    StoryContext,
    StoryUpdate,
)
from fabula_gateway.stories.mappers import story_summary_from_proto
from fabula_gateway.stories.schemas import Direction, StorySummary

router = APIRouter(prefix="/v1/stories", tags=["stories"])

_LOGIC_TO_PROTO: dict[str, int] = {
    "and_any": stories_pb2.SECONDARY_KEYS_LOGIC_AND_ANY,
    "and_all": stories_pb2.SECONDARY_KEYS_LOGIC_AND_ALL,
    "not_any": stories_pb2.SECONDARY_KEYS_LOGIC_NOT_ANY,
}
_LOGIC_FROM_PROTO: dict[int, SecondaryLogic] = {
    value: name for name, value in _LOGIC_TO_PROTO.items()
}
_LOGIC_FROM_PROTO[stories_pb2.SECONDARY_KEYS_LOGIC_UNSPECIFIED] = "and_any"

_S409_LIMIT = "The story already has 200 lore entries, the most it may have."


async def _entry_id(
    entry_id: Annotated[str, Path(description="The lore entry's id (a UUID).")],
) -> str:
    # Not a UUID means no such entry: 404 like any other unknown id, not 422.
    try:
        return str(uuid.UUID(entry_id))
    except ValueError:
        raise ProblemError(NOT_FOUND, "Lore entry not found.") from None


EntryId = Annotated[str, Depends(_entry_id)]


def lore_entry_from_proto(entry: stories_pb2.LoreEntry) -> LoreEntry:
    return LoreEntry(
        id=entry.id,
        story_id=entry.story_id,
        keys=list(entry.keys),
        secondary_keys=list(entry.secondary_keys),
        secondary_logic=_LOGIC_FROM_PROTO[entry.secondary_logic],
        text=entry.text,
        priority=entry.priority,
        constant=entry.constant,
        enabled=entry.enabled,
        created_at=to_datetime(entry.created_at),
        updated_at=to_datetime(entry.updated_at),
    )


def context_from_proto(context: stories_pb2.StoryContext) -> StoryContext:
    return StoryContext(
        memory=context.memory,
        lore=[
            ContextLore(
                entry_id=hit.entry_id, text=hit.text, tokens=hit.tokens, matched=hit.matched
            )
            for hit in context.lore
        ],
        segments=[
            ContextSegment(
                position=piece.position,
                segment_id=piece.segment_id,
                text=piece.text,
                tokens=piece.tokens,
                truncated=piece.truncated,
            )
            for piece in context.segments
        ],
        authors_note=context.authors_note,
        direction=context.direction,
        budget=ContextBudget(
            max_tokens=context.budget.max_tokens,
            used_tokens=context.budget.used_tokens,
            segments_omitted=context.budget.segments_omitted,
            lore_omitted=list(context.budget.lore_omitted),
        ),
        prompt=[PromptMessage(role=m.role, content=m.content) for m in context.prompt],
    )


@router.patch(
    "/{story_id}",
    operation_id="update_story",
    response_model=StorySummary,
    response_description="The story without its segments (as `GET ...?view=basic` shows it).",
    summary="Change a story's title, memory, author's note or favourite mark",
    description="Changes the fields sent; the others stay. `memory` is always shown to the "
    "model; `authors_note` is shown near the end of its context. An empty string or null "
    "clears either. No model call, no quota used.",
    responses=problem_responses(401, 404, 413, 415, 422, 500, 503),
)
async def update_story(
    body: StoryUpdate, _json: JsonBody, user_id: CurrentUserId, story_id: StoryId, clients: Clients
) -> StorySummary:
    message = stories_pb2.UpdateStoryRequest(user_id=user_id, story_id=story_id)
    sent = body.model_fields_set
    if "title" in sent:
        message.title = body.title
    if "memory" in sent:
        message.memory = body.memory or ""
    if "authors_note" in sent:
        message.authors_note = body.authors_note or ""
    if "is_favorite" in sent:
        message.is_favorite = body.is_favorite
    return story_summary_from_proto(await clients.stories.UpdateStory(message))


@router.post(
    "/{story_id}/lore",
    operation_id="create_lore_entry",
    status_code=status.HTTP_201_CREATED,
    response_model=LoreEntry,
    response_description="The new entry.",
    summary="Add a lore entry",
    description="A fact shown to the model when one of its `keys` appears in the recent "
    "story (case-insensitive, whole words), refined by `secondary_keys`; `constant` "
    "entries are always shown. At most 200 per story. The Location header names the entry.",
    responses=problem_responses(401, 404, 409, 413, 415, 422, 500, 503, s409=_S409_LIMIT),
)
async def create_lore_entry(
    body: LoreEntryCreate,
    _json: JsonBody,
    user_id: CurrentUserId,
    story_id: StoryId,
    clients: Clients,
    request: Request,
    response: Response,
) -> LoreEntry:
    reply = await clients.stories.CreateLoreEntry(
        stories_pb2.CreateLoreEntryRequest(
            user_id=user_id,
            story_id=story_id,
            keys=body.keys,
            secondary_keys=body.secondary_keys,
            secondary_logic=_LOGIC_TO_PROTO[body.secondary_logic],
            text=body.text,
            priority=body.priority,
            constant=body.constant,
            enabled=body.enabled,
        )
    )
    entry = lore_entry_from_proto(reply)
    response.headers["Location"] = request.app.url_path_for(
        "get_lore_entry", story_id=story_id, entry_id=entry.id
    )
    return entry


@router.get(
    "/{story_id}/lore",
    operation_id="list_lore_entries",
    response_model=LoreEntryList,
    summary="List a story's lore entries",
    description="All the story's entries, by priority (highest first), then oldest first.",
    responses=problem_responses(401, 404, 500, 503),
)
async def list_lore_entries(
    user_id: CurrentUserId, story_id: StoryId, clients: Clients
) -> LoreEntryList:
    reply = await clients.stories.ListLoreEntries(
        stories_pb2.StoryRef(user_id=user_id, story_id=story_id)
    )
    return LoreEntryList(items=[lore_entry_from_proto(entry) for entry in reply.entries])


@router.get(
    "/{story_id}/lore/{entry_id}",
    name="get_lore_entry",
    operation_id="get_lore_entry",
    response_model=LoreEntry,
    summary="Get a lore entry",
    responses=problem_responses(401, 404, 500, 503),
)
async def get_lore_entry(
    user_id: CurrentUserId, story_id: StoryId, entry_id: EntryId, clients: Clients
) -> LoreEntry:
    reply = await clients.stories.GetLoreEntry(
        stories_pb2.LoreEntryRef(user_id=user_id, story_id=story_id, entry_id=entry_id)
    )
    return lore_entry_from_proto(reply)


@router.patch(
    "/{story_id}/lore/{entry_id}",
    operation_id="update_lore_entry",
    response_model=LoreEntry,
    summary="Change a lore entry",
    description="Changes the fields sent; the others stay. The entry must stay valid: a "
    "keyed (not constant) entry keeps at least one key.",
    responses=problem_responses(401, 404, 413, 415, 422, 500, 503),
)
async def update_lore_entry(
    body: LoreEntryUpdate,
    _json: JsonBody,
    user_id: CurrentUserId,
    story_id: StoryId,
    entry_id: EntryId,
    clients: Clients,
) -> LoreEntry:
    sent = body.model_fields_set
    message = stories_pb2.UpdateLoreEntryRequest(
        user_id=user_id, story_id=story_id, entry_id=entry_id, fields=sorted(sent)
    )
    if body.keys is not None:
        message.keys.extend(body.keys)
    if body.secondary_keys is not None:
        message.secondary_keys.extend(body.secondary_keys)
    if body.secondary_logic is not None:
        message.secondary_logic = _LOGIC_TO_PROTO[body.secondary_logic]
    message.text = body.text or ""
    message.priority = body.priority or 0
    message.constant = bool(body.constant)
    message.enabled = bool(body.enabled)
    return lore_entry_from_proto(await clients.stories.UpdateLoreEntry(message))


@router.delete(
    "/{story_id}/lore/{entry_id}",
    operation_id="delete_lore_entry",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_description="Deleted.",
    summary="Delete a lore entry",
    responses=problem_responses(401, 404, 500, 503),
)
async def delete_lore_entry(
    user_id: CurrentUserId, story_id: StoryId, entry_id: EntryId, clients: Clients
) -> None:
    await clients.stories.DeleteLoreEntry(
        stories_pb2.LoreEntryRef(user_id=user_id, story_id=story_id, entry_id=entry_id)
    )


@router.get(
    "/{story_id}/context",
    operation_id="get_story_context",
    response_model=StoryContext,
    summary="Show what the model would be given next",
    description="Exactly what the model would be sent for the story's next segment: "
    "memory, the lore entries the recent story calls up, the segments kept, author's note "
    "and direction, the token budget (approximate tokens, characters / 4) with what was "
    "left out, and the prompt messages. For debugging prompts; no model call, no quota used.",
    responses=problem_responses(401, 404, 422, 500, 503),
)
async def get_story_context(
    user_id: CurrentUserId,
    story_id: StoryId,
    clients: Clients,
    after_segment_id: Annotated[
        str | None,
        Query(
            max_length=64,
            description="The segment the next one would follow (a branch); the story's "
            "head segment when omitted.",
        ),
    ] = None,
    direction: Annotated[
        Direction | None, Query(description="A direction, as for continuing the story.")
    ] = None,
) -> StoryContext:
    message = stories_pb2.GetContextRequest(user_id=user_id, story_id=story_id)
    if after_segment_id:
        try:
            message.after_segment_id = str(uuid.UUID(after_segment_id))
        except ValueError:
            raise ProblemError(NOT_FOUND, "Segment not found.") from None
    if direction:
        message.direction = direction
    return context_from_proto(await clients.stories.GetContext(message))
