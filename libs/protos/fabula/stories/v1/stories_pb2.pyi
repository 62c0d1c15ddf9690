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
SEGMENT_KIND_UNSPECIFIED: SegmentKind
SEGMENT_KIND_OPENING: SegmentKind
SEGMENT_KIND_CONTINUATION: SegmentKind
SEGMENT_KIND_ENDING: SegmentKind
STORY_VIEW_UNSPECIFIED: StoryView
STORY_VIEW_BASIC: StoryView
STORY_VIEW_FULL: StoryView

class ExportStoriesRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("id", "position", "text", "kind", "created_at", "provider", "model", "is_language_model")
    ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IS_LANGUAGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    id: str
    position: int
    text: str
    kind: SegmentKind
    created_at: _timestamp_pb2.Timestamp
    provider: str
    model: str
    is_language_model: bool
    def __init__(self, id: _Optional[str] = ..., position: _Optional[int] = ..., text: _Optional[str] = ..., kind: _Optional[_Union[SegmentKind, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., is_language_model: _Optional[bool] = ...) -> None: ...

class Story(_message.Message):
    __slots__ = ("id", "user_id", "title", "genre", "characters", "opening_line", "is_complete", "segments", "created_at", "updated_at", "segment_count")
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
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., title: _Optional[str] = ..., genre: _Optional[str] = ..., characters: _Optional[_Iterable[str]] = ..., opening_line: _Optional[str] = ..., is_complete: _Optional[bool] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., segment_count: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("user_id", "limit", "cursor")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    limit: int
    cursor: str
    def __init__(self, user_id: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

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
