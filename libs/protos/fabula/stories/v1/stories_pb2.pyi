import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RevisionSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVISION_SOURCE_UNSPECIFIED: _ClassVar[RevisionSource]
    REVISION_SOURCE_GENERATED: _ClassVar[RevisionSource]
    REVISION_SOURCE_EDITED: _ClassVar[RevisionSource]
    REVISION_SOURCE_RESTORED: _ClassVar[RevisionSource]
    REVISION_SOURCE_IMPORTED: _ClassVar[RevisionSource]

class SecondaryKeysLogic(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SECONDARY_KEYS_LOGIC_UNSPECIFIED: _ClassVar[SecondaryKeysLogic]
    SECONDARY_KEYS_LOGIC_AND_ANY: _ClassVar[SecondaryKeysLogic]
    SECONDARY_KEYS_LOGIC_AND_ALL: _ClassVar[SecondaryKeysLogic]
    SECONDARY_KEYS_LOGIC_NOT_ANY: _ClassVar[SecondaryKeysLogic]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_MARKDOWN: _ClassVar[ExportFormat]
    EXPORT_FORMAT_TEXT: _ClassVar[ExportFormat]
    EXPORT_FORMAT_EPUB: _ClassVar[ExportFormat]

class SegmentKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEGMENT_KIND_UNSPECIFIED: _ClassVar[SegmentKind]
    SEGMENT_KIND_OPENING: _ClassVar[SegmentKind]
    SEGMENT_KIND_CONTINUATION: _ClassVar[SegmentKind]
    SEGMENT_KIND_ENDING: _ClassVar[SegmentKind]

class StoryView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STORY_VIEW_UNSPECIFIED: _ClassVar[StoryView]
    STORY_VIEW_BASIC: _ClassVar[StoryView]
    STORY_VIEW_FULL: _ClassVar[StoryView]
REVISION_SOURCE_UNSPECIFIED: RevisionSource
REVISION_SOURCE_GENERATED: RevisionSource
REVISION_SOURCE_EDITED: RevisionSource
REVISION_SOURCE_RESTORED: RevisionSource
REVISION_SOURCE_IMPORTED: RevisionSource
SECONDARY_KEYS_LOGIC_UNSPECIFIED: SecondaryKeysLogic
SECONDARY_KEYS_LOGIC_AND_ANY: SecondaryKeysLogic
SECONDARY_KEYS_LOGIC_AND_ALL: SecondaryKeysLogic
SECONDARY_KEYS_LOGIC_NOT_ANY: SecondaryKeysLogic
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_MARKDOWN: ExportFormat
EXPORT_FORMAT_TEXT: ExportFormat
EXPORT_FORMAT_EPUB: ExportFormat
SEGMENT_KIND_UNSPECIFIED: SegmentKind
SEGMENT_KIND_OPENING: SegmentKind
SEGMENT_KIND_CONTINUATION: SegmentKind
SEGMENT_KIND_ENDING: SegmentKind
STORY_VIEW_UNSPECIFIED: StoryView
STORY_VIEW_BASIC: StoryView
STORY_VIEW_FULL: StoryView

class StoryRef(_message.Message):
    __slots__ = ("user_id", "story_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ...) -> None: ...

class SegmentRef(_message.Message):
    __slots__ = ("user_id", "story_id", "segment_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    segment_id: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., segment_id: _Optional[str] = ...) -> None: ...

class RegenerateSegmentRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "segment_id", "direction", "idempotency_key")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    segment_id: str
    direction: str
    idempotency_key: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., segment_id: _Optional[str] = ..., direction: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ListAlternativesResponse(_message.Message):
    __slots__ = ("alternatives",)
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    alternatives: _containers.RepeatedCompositeFieldContainer[Segment]
    def __init__(self, alternatives: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ...) -> None: ...

class SelectAlternativeRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "segment_id", "alternative_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVE_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    segment_id: str
    alternative_id: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., segment_id: _Optional[str] = ..., alternative_id: _Optional[str] = ...) -> None: ...

class EditSegmentRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "segment_id", "text")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    segment_id: str
    text: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., segment_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class SegmentRevision(_message.Message):
    __slots__ = ("id", "segment_id", "number", "text", "source", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    segment_id: str
    number: int
    text: str
    source: RevisionSource
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., segment_id: _Optional[str] = ..., number: _Optional[int] = ..., text: _Optional[str] = ..., source: _Optional[_Union[RevisionSource, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListRevisionsResponse(_message.Message):
    __slots__ = ("revisions",)
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    revisions: _containers.RepeatedCompositeFieldContainer[SegmentRevision]
    def __init__(self, revisions: _Optional[_Iterable[_Union[SegmentRevision, _Mapping]]] = ...) -> None: ...

class RestoreRevisionRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "segment_id", "revision_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    segment_id: str
    revision_id: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., segment_id: _Optional[str] = ..., revision_id: _Optional[str] = ...) -> None: ...

class Branch(_message.Message):
    __slots__ = ("id", "length", "fork_position", "preview", "is_current", "is_complete", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    FORK_POSITION_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    IS_CURRENT_FIELD_NUMBER: _ClassVar[int]
    IS_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    length: int
    fork_position: int
    preview: str
    is_current: bool
    is_complete: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., length: _Optional[int] = ..., fork_position: _Optional[int] = ..., preview: _Optional[str] = ..., is_current: _Optional[bool] = ..., is_complete: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListBranchesResponse(_message.Message):
    __slots__ = ("branches",)
    BRANCHES_FIELD_NUMBER: _ClassVar[int]
    branches: _containers.RepeatedCompositeFieldContainer[Branch]
    def __init__(self, branches: _Optional[_Iterable[_Union[Branch, _Mapping]]] = ...) -> None: ...

class SelectBranchRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "branch_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    BRANCH_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    branch_id: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., branch_id: _Optional[str] = ...) -> None: ...

class UpdateStoryRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "title", "memory", "authors_note", "is_favorite")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    AUTHORS_NOTE_FIELD_NUMBER: _ClassVar[int]
    IS_FAVORITE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    title: str
    memory: str
    authors_note: str
    is_favorite: bool
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., title: _Optional[str] = ..., memory: _Optional[str] = ..., authors_note: _Optional[str] = ..., is_favorite: _Optional[bool] = ...) -> None: ...

class LoreEntry(_message.Message):
    __slots__ = ("id", "story_id", "keys", "secondary_keys", "secondary_logic", "text", "priority", "constant", "enabled", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_KEYS_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_LOGIC_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CONSTANT_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    story_id: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    secondary_keys: _containers.RepeatedScalarFieldContainer[str]
    secondary_logic: SecondaryKeysLogic
    text: str
    priority: int
    constant: bool
    enabled: bool
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., story_id: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., secondary_keys: _Optional[_Iterable[str]] = ..., secondary_logic: _Optional[_Union[SecondaryKeysLogic, str]] = ..., text: _Optional[str] = ..., priority: _Optional[int] = ..., constant: _Optional[bool] = ..., enabled: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateLoreEntryRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "keys", "secondary_keys", "secondary_logic", "text", "priority", "constant", "enabled")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_KEYS_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_LOGIC_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CONSTANT_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    secondary_keys: _containers.RepeatedScalarFieldContainer[str]
    secondary_logic: SecondaryKeysLogic
    text: str
    priority: int
    constant: bool
    enabled: bool
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., secondary_keys: _Optional[_Iterable[str]] = ..., secondary_logic: _Optional[_Union[SecondaryKeysLogic, str]] = ..., text: _Optional[str] = ..., priority: _Optional[int] = ..., constant: _Optional[bool] = ..., enabled: _Optional[bool] = ...) -> None: ...

class LoreEntryRef(_message.Message):
    __slots__ = ("user_id", "story_id", "entry_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    entry_id: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., entry_id: _Optional[str] = ...) -> None: ...

class UpdateLoreEntryRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "entry_id", "fields", "keys", "secondary_keys", "secondary_logic", "text", "priority", "constant", "enabled")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_KEYS_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_LOGIC_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CONSTANT_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    entry_id: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    keys: _containers.RepeatedScalarFieldContainer[str]
    secondary_keys: _containers.RepeatedScalarFieldContainer[str]
    secondary_logic: SecondaryKeysLogic
    text: str
    priority: int
    constant: bool
    enabled: bool
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., entry_id: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., keys: _Optional[_Iterable[str]] = ..., secondary_keys: _Optional[_Iterable[str]] = ..., secondary_logic: _Optional[_Union[SecondaryKeysLogic, str]] = ..., text: _Optional[str] = ..., priority: _Optional[int] = ..., constant: _Optional[bool] = ..., enabled: _Optional[bool] = ...) -> None: ...

class ListLoreEntriesResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LoreEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[LoreEntry, _Mapping]]] = ...) -> None: ...

class GetContextRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "after_segment_id", "direction")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    after_segment_id: str
    direction: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., after_segment_id: _Optional[str] = ..., direction: _Optional[str] = ...) -> None: ...

class ContextSegment(_message.Message):
    __slots__ = ("position", "segment_id", "text", "tokens", "truncated")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    position: int
    segment_id: str
    text: str
    tokens: int
    truncated: bool
    def __init__(self, position: _Optional[int] = ..., segment_id: _Optional[str] = ..., text: _Optional[str] = ..., tokens: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class ContextLore(_message.Message):
    __slots__ = ("entry_id", "text", "tokens", "matched")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    text: str
    tokens: int
    matched: str
    def __init__(self, entry_id: _Optional[str] = ..., text: _Optional[str] = ..., tokens: _Optional[int] = ..., matched: _Optional[str] = ...) -> None: ...

class ContextBudget(_message.Message):
    __slots__ = ("max_tokens", "used_tokens", "segments_omitted", "lore_omitted")
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    USED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_OMITTED_FIELD_NUMBER: _ClassVar[int]
    LORE_OMITTED_FIELD_NUMBER: _ClassVar[int]
    max_tokens: int
    used_tokens: int
    segments_omitted: int
    lore_omitted: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, max_tokens: _Optional[int] = ..., used_tokens: _Optional[int] = ..., segments_omitted: _Optional[int] = ..., lore_omitted: _Optional[_Iterable[str]] = ...) -> None: ...

class PromptMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class StoryContext(_message.Message):
    __slots__ = ("memory", "lore", "segments", "authors_note", "direction", "budget", "prompt")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    LORE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    AUTHORS_NOTE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    memory: str
    lore: _containers.RepeatedCompositeFieldContainer[ContextLore]
    segments: _containers.RepeatedCompositeFieldContainer[ContextSegment]
    authors_note: str
    direction: str
    budget: ContextBudget
    prompt: _containers.RepeatedCompositeFieldContainer[PromptMessage]
    def __init__(self, memory: _Optional[str] = ..., lore: _Optional[_Iterable[_Union[ContextLore, _Mapping]]] = ..., segments: _Optional[_Iterable[_Union[ContextSegment, _Mapping]]] = ..., authors_note: _Optional[str] = ..., direction: _Optional[str] = ..., budget: _Optional[_Union[ContextBudget, _Mapping]] = ..., prompt: _Optional[_Iterable[_Union[PromptMessage, _Mapping]]] = ...) -> None: ...

class StoryShare(_message.Message):
    __slots__ = ("story_id", "token", "created_at")
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    story_id: str
    token: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, story_id: _Optional[str] = ..., token: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetSharedStoryRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class SharedStory(_message.Message):
    __slots__ = ("title", "genre", "characters", "is_complete", "segments", "created_at", "updated_at", "view_count")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    IS_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    VIEW_COUNT_FIELD_NUMBER: _ClassVar[int]
    title: str
    genre: str
    characters: _containers.RepeatedScalarFieldContainer[str]
    is_complete: bool
    segments: _containers.RepeatedCompositeFieldContainer[SharedSegment]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    view_count: int
    def __init__(self, title: _Optional[str] = ..., genre: _Optional[str] = ..., characters: _Optional[_Iterable[str]] = ..., is_complete: _Optional[bool] = ..., segments: _Optional[_Iterable[_Union[SharedSegment, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., view_count: _Optional[int] = ...) -> None: ...

class SharedSegment(_message.Message):
    __slots__ = ("position", "kind", "text")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    position: int
    kind: SegmentKind
    text: str
    def __init__(self, position: _Optional[int] = ..., kind: _Optional[_Union[SegmentKind, str]] = ..., text: _Optional[str] = ...) -> None: ...

class GetStoryStatsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class GenreStats(_message.Message):
    __slots__ = ("genre", "total", "completed", "words")
    GENRE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    genre: str
    total: int
    completed: int
    words: int
    def __init__(self, genre: _Optional[str] = ..., total: _Optional[int] = ..., completed: _Optional[int] = ..., words: _Optional[int] = ...) -> None: ...

class StoryStats(_message.Message):
    __slots__ = ("total", "completed", "average_segments", "total_words", "genres", "favorites")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_WORDS_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    FAVORITES_FIELD_NUMBER: _ClassVar[int]
    total: int
    completed: int
    average_segments: float
    total_words: int
    genres: _containers.RepeatedCompositeFieldContainer[GenreStats]
    favorites: int
    def __init__(self, total: _Optional[int] = ..., completed: _Optional[int] = ..., average_segments: _Optional[float] = ..., total_words: _Optional[int] = ..., genres: _Optional[_Iterable[_Union[GenreStats, _Mapping]]] = ..., favorites: _Optional[int] = ...) -> None: ...

class ExportStoryRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "format", "author_name")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_NAME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    format: ExportFormat
    author_name: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., author_name: _Optional[str] = ...) -> None: ...

class ExportHeader(_message.Message):
    __slots__ = ("filename", "content_type", "size_bytes")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    filename: str
    content_type: str
    size_bytes: int
    def __init__(self, filename: _Optional[str] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class ExportChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: ExportHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[ExportHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ImportStoryRequest(_message.Message):
    __slots__ = ("user_id", "source", "original_id", "title", "genre", "characters", "opening_line", "segments", "is_complete", "created_at", "updated_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    OPENING_LINE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    IS_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    source: str
    original_id: str
    title: str
    genre: str
    characters: _containers.RepeatedScalarFieldContainer[str]
    opening_line: str
    segments: _containers.RepeatedScalarFieldContainer[str]
    is_complete: bool
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., source: _Optional[str] = ..., original_id: _Optional[str] = ..., title: _Optional[str] = ..., genre: _Optional[str] = ..., characters: _Optional[_Iterable[str]] = ..., opening_line: _Optional[str] = ..., segments: _Optional[_Iterable[str]] = ..., is_complete: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ImportStoryResponse(_message.Message):
    __slots__ = ("story_id", "imported")
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_FIELD_NUMBER: _ClassVar[int]
    story_id: str
    imported: bool
    def __init__(self, story_id: _Optional[str] = ..., imported: _Optional[bool] = ...) -> None: ...

class ExportStoriesRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("id", "position", "text", "kind", "created_at", "provider", "model", "is_language_model", "parent_id", "alternative_count", "alternative_number", "edited", "selected", "word_count")
    ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IS_LANGUAGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EDITED_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    WORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    position: int
    text: str
    kind: SegmentKind
    created_at: _timestamp_pb2.Timestamp
    provider: str
    model: str
    is_language_model: bool
    parent_id: str
    alternative_count: int
    alternative_number: int
    edited: bool
    selected: bool
    word_count: int
    def __init__(self, id: _Optional[str] = ..., position: _Optional[int] = ..., text: _Optional[str] = ..., kind: _Optional[_Union[SegmentKind, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., is_language_model: _Optional[bool] = ..., parent_id: _Optional[str] = ..., alternative_count: _Optional[int] = ..., alternative_number: _Optional[int] = ..., edited: _Optional[bool] = ..., selected: _Optional[bool] = ..., word_count: _Optional[int] = ...) -> None: ...

class Story(_message.Message):
    __slots__ = ("id", "user_id", "title", "genre", "characters", "opening_line", "is_complete", "segments", "created_at", "updated_at", "segment_count", "memory", "authors_note", "is_favorite", "head_segment_id", "search")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    OPENING_LINE_FIELD_NUMBER: _ClassVar[int]
    IS_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    AUTHORS_NOTE_FIELD_NUMBER: _ClassVar[int]
    IS_FAVORITE_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    title: str
    genre: str
    characters: _containers.RepeatedScalarFieldContainer[str]
    opening_line: str
    is_complete: bool
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    segment_count: int
    memory: str
    authors_note: str
    is_favorite: bool
    head_segment_id: str
    search: SearchHit
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., title: _Optional[str] = ..., genre: _Optional[str] = ..., characters: _Optional[_Iterable[str]] = ..., opening_line: _Optional[str] = ..., is_complete: _Optional[bool] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., segment_count: _Optional[int] = ..., memory: _Optional[str] = ..., authors_note: _Optional[str] = ..., is_favorite: _Optional[bool] = ..., head_segment_id: _Optional[str] = ..., search: _Optional[_Union[SearchHit, _Mapping]] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("rank", "snippet", "segment_id")
    RANK_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    rank: float
    snippet: str
    segment_id: str
    def __init__(self, rank: _Optional[float] = ..., snippet: _Optional[str] = ..., segment_id: _Optional[str] = ...) -> None: ...

class CreateStoryRequest(_message.Message):
    __slots__ = ("user_id", "genre", "title", "characters", "opening_line", "idempotency_key")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    OPENING_LINE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    genre: str
    title: str
    characters: _containers.RepeatedScalarFieldContainer[str]
    opening_line: str
    idempotency_key: str
    def __init__(self, user_id: _Optional[str] = ..., genre: _Optional[str] = ..., title: _Optional[str] = ..., characters: _Optional[_Iterable[str]] = ..., opening_line: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ContinueStoryRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "direction", "idempotency_key", "after_segment_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    direction: str
    idempotency_key: str
    after_segment_id: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., direction: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., after_segment_id: _Optional[str] = ...) -> None: ...

class TextDelta(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class ContinueStoryEvent(_message.Message):
    __slots__ = ("token", "segment")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    token: TextDelta
    segment: Segment
    def __init__(self, token: _Optional[_Union[TextDelta, _Mapping]] = ..., segment: _Optional[_Union[Segment, _Mapping]] = ...) -> None: ...

class CreateStoryEvent(_message.Message):
    __slots__ = ("token", "story")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    STORY_FIELD_NUMBER: _ClassVar[int]
    token: TextDelta
    story: Story
    def __init__(self, token: _Optional[_Union[TextDelta, _Mapping]] = ..., story: _Optional[_Union[Story, _Mapping]] = ...) -> None: ...

class EndStoryRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "direction", "idempotency_key")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    direction: str
    idempotency_key: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., direction: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetStoryRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "view")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    view: StoryView
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., view: _Optional[_Union[StoryView, str]] = ...) -> None: ...

class ListSegmentsRequest(_message.Message):
    __slots__ = ("user_id", "story_id", "after_position", "limit")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_POSITION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    after_position: int
    limit: int
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ..., after_position: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListSegmentsResponse(_message.Message):
    __slots__ = ("segments", "next_after_position")
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_POSITION_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    next_after_position: int
    def __init__(self, segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., next_after_position: _Optional[int] = ...) -> None: ...

class ListStoriesRequest(_message.Message):
    __slots__ = ("user_id", "limit", "cursor", "query", "genre", "is_complete", "is_favorite")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    IS_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    IS_FAVORITE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    limit: int
    cursor: str
    query: str
    genre: str
    is_complete: bool
    is_favorite: bool
    def __init__(self, user_id: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., query: _Optional[str] = ..., genre: _Optional[str] = ..., is_complete: _Optional[bool] = ..., is_favorite: _Optional[bool] = ...) -> None: ...

class ListStoriesResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Story]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[Story, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class DeleteStoryRequest(_message.Message):
    __slots__ = ("user_id", "story_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    story_id: str
    def __init__(self, user_id: _Optional[str] = ..., story_id: _Optional[str] = ...) -> None: ...
