"""The StoriesService methods for memory, author's note, favourites, lore and
the model's context: a mixin composed into the service's servicer (app.py)."""

from __future__ import annotations

import datetime as dt
import uuid

import grpc
from fabula.generation.v1 import generation_pb2_grpc
from fabula.stories.v1 import stories_pb2
from fabula_common.db import Database
from fabula_common.errors import InvalidArgument, NotFound, from_rpc_error
from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from fabula_stories.context import builder
from fabula_stories.lore import service
from fabula_stories.settings import Settings
from fabula_stories.stories import service as stories_service
from fabula_stories.stories.models import LoreEntry, SecondaryLogic, Story
from fabula_stories.stories.servicer import story_to_proto

_LOGIC_FROM_PROTO = {
    stories_pb2.SECONDARY_KEYS_LOGIC_UNSPECIFIED: SecondaryLogic.and_any,
    stories_pb2.SECONDARY_KEYS_LOGIC_AND_ANY: SecondaryLogic.and_any,
    stories_pb2.SECONDARY_KEYS_LOGIC_AND_ALL: SecondaryLogic.and_all,
    stories_pb2.SECONDARY_KEYS_LOGIC_NOT_ANY: SecondaryLogic.not_any,
}
_LOGIC_TO_PROTO = {
    SecondaryLogic.and_any.value: stories_pb2.SECONDARY_KEYS_LOGIC_AND_ANY,
    SecondaryLogic.and_all.value: stories_pb2.SECONDARY_KEYS_LOGIC_AND_ALL,
    SecondaryLogic.not_any.value: stories_pb2.SECONDARY_KEYS_LOGIC_NOT_ANY,
}


class LoreServicer:
    """UpdateStory, the lore entries and GetContext. Needs the database, the
    generation service (to render the prompt) and the settings (the budget)."""

    def __init__(
        self,
        db: Database,
        generation: generation_pb2_grpc.GenerationServiceStub,
        settings: Settings,
    ) -> None:
        self._lore_db = db
        self._lore_generation = generation
        self._lore_settings = settings

    async def UpdateStory(
        self, request: stories_pb2.UpdateStoryRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.Story:
        user_id = stories_service.parse_user_id(request.user_id)
        story_id = stories_service.parse_story_id(request.story_id)
        changes = service.validate_story_changes(
            title=request.title if request.HasField("title") else None,
            memory=request.memory if request.HasField("memory") else None,
            authors_note=request.authors_note if request.HasField("authors_note") else None,
            is_favorite=request.is_favorite if request.HasField("is_favorite") else None,
        )
        async with self._lore_db.session_scope() as session:
            story, length = await service.update_story(session, user_id, story_id, changes)
        return basic_story_to_proto(story, length)

    async def CreateLoreEntry(
        self, request: stories_pb2.CreateLoreEntryRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.LoreEntry:
        user_id = stories_service.parse_user_id(request.user_id)
        story_id = stories_service.parse_story_id(request.story_id)
        fields = service.validate_lore(
            keys=list(request.keys),
            secondary_keys=list(request.secondary_keys),
            secondary_logic=_logic(request.secondary_logic),
            text=request.text,
            priority=request.priority,
            constant=request.constant,
            enabled=request.enabled if request.HasField("enabled") else True,
        )
        async with self._lore_db.session_scope() as session:
            entry = await service.create_lore_entry(session, user_id, story_id, fields)
        return lore_entry_to_proto(entry)

    async def ListLoreEntries(
        self, request: stories_pb2.StoryRef, context: grpc.aio.ServicerContext
    ) -> stories_pb2.ListLoreEntriesResponse:
        user_id = stories_service.parse_user_id(request.user_id)
        story_id = stories_service.parse_story_id(request.story_id)
        async with self._lore_db.session_scope() as session:
            entries = await service.list_lore_entries(session, user_id, story_id)
        return stories_pb2.ListLoreEntriesResponse(
            entries=[lore_entry_to_proto(entry) for entry in entries]
        )

    async def GetLoreEntry(
        self, request: stories_pb2.LoreEntryRef, context: grpc.aio.ServicerContext
    ) -> stories_pb2.LoreEntry:
        user_id, story_id, entry_id = _entry_ref(request)
        async with self._lore_db.session_scope() as session:
            entry = await service.get_lore_entry(session, user_id, story_id, entry_id)
        return lore_entry_to_proto(entry)

    async def UpdateLoreEntry(
        self, request: stories_pb2.UpdateLoreEntryRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.LoreEntry:
        user_id, story_id, entry_id = _entry_ref(request)
        changed = service.validate_field_mask(list(request.fields))
        proposed = {
            "keys": list(request.keys),
            "secondary_keys": list(request.secondary_keys),
            "secondary_logic": _logic(request.secondary_logic),
            "text": request.text,
            "priority": request.priority,
            "constant": request.constant,
            "enabled": request.enabled,
        }
        async with self._lore_db.session_scope() as session:
            entry = await service.update_lore_entry(
                session, user_id, story_id, entry_id, changed, proposed
            )
        return lore_entry_to_proto(entry)

    async def DeleteLoreEntry(
        self, request: stories_pb2.LoreEntryRef, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        user_id, story_id, entry_id = _entry_ref(request)
        async with self._lore_db.session_scope() as session:
            await service.delete_lore_entry(session, user_id, story_id, entry_id)
        return empty_pb2.Empty()

    async def GetContext(
        self, request: stories_pb2.GetContextRequest, context: grpc.aio.ServicerContext
    ) -> stories_pb2.StoryContext:
        user_id = stories_service.parse_user_id(request.user_id)
        story_id = stories_service.parse_story_id(request.story_id)
        after_id = _segment_id(request.after_segment_id) if request.after_segment_id else None
        direction = stories_service.validate_direction(
            request.direction if request.HasField("direction") else None
        )
        settings = self._lore_settings
        async with self._lore_db.session_scope() as session:
            story = await service.owned_story(session, user_id, story_id)
            after_id = await service.segment_to_follow(session, story, after_id)
            built = await builder.load_for_writing(
                session,
                user_id,
                story.id,
                after_id,
                direction,
                max_segments=settings.context_segments,
                max_chars=settings.context_max_chars,
                limits=builder.ContextLimits.from_settings(settings),
            )
        # Exactly what the writer would send for the next segment, rendered
        # by the service that owns the prompts.
        generate = builder.generate_request(built, user_id=user_id, story_id=story_id)
        try:
            rendered = await self._lore_generation.RenderPrompt(
                generate, timeout=settings.grpc_deadline_seconds
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from err
        return context_to_proto(built, rendered.messages)


def _logic(value: int) -> SecondaryLogic:
    try:
        return _LOGIC_FROM_PROTO[value]
    except KeyError:
        raise InvalidArgument(f"secondary_logic {value} is unknown") from None


def _segment_id(value: str) -> uuid.UUID:
    # No segment has a malformed id, so asking for one finds nothing.
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("segment not found") from None


def _entry_ref(request) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    user_id = stories_service.parse_user_id(request.user_id)
    story_id = stories_service.parse_story_id(request.story_id)
    try:
        entry_id = uuid.UUID(request.entry_id)
    except ValueError:
        raise NotFound("lore entry not found") from None
    return user_id, story_id, entry_id


def _timestamp(value: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def basic_story_to_proto(story: Story, followed_length: int) -> stories_pb2.Story:
    """The story as the BASIC view shows it."""
    message = story_to_proto(story, segment_count=followed_length)
    message.memory = story.memory
    message.authors_note = story.authors_note
    message.is_favorite = story.is_favorite
    message.head_segment_id = str(story.head_segment_id) if story.head_segment_id else ""
    return message


def lore_entry_to_proto(entry: LoreEntry) -> stories_pb2.LoreEntry:
    return stories_pb2.LoreEntry(
        id=str(entry.id),
        story_id=str(entry.story_id),
        keys=entry.keys,
        secondary_keys=entry.secondary_keys,
        secondary_logic=_LOGIC_TO_PROTO[entry.secondary_logic],
        text=entry.text,
        priority=entry.priority,
        constant=entry.constant,
        enabled=entry.enabled,
        created_at=_timestamp(entry.created_at),
        updated_at=_timestamp(entry.updated_at),
    )


def context_to_proto(built: builder.BuiltContext, messages) -> stories_pb2.StoryContext:
    return stories_pb2.StoryContext(
        memory=built.facts.memory,
        lore=[
            stories_pb2.ContextLore(
                entry_id=str(hit.entry_id), text=hit.text, tokens=hit.tokens, matched=hit.matched
            )
            for hit in built.lore
        ],
        segments=[
            stories_pb2.ContextSegment(
                position=piece.position,
                segment_id=str(piece.segment_id),
                text=piece.text,
                tokens=piece.tokens,
                truncated=piece.truncated,
            )
            for piece in built.segments
        ],
        authors_note=built.facts.authors_note,
        direction=built.direction,
        budget=stories_pb2.ContextBudget(
            max_tokens=built.max_tokens,
            used_tokens=built.used_tokens,
            segments_omitted=built.segments_omitted,
            lore_omitted=[str(entry_id) for entry_id in built.lore_omitted],
        ),
        prompt=[
            stories_pb2.PromptMessage(role=message.role, content=message.content)
            for message in messages
        ],
    )
