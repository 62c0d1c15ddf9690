import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LocalizedText(_message.Message):
    __slots__ = ("en", "de")
    EN_FIELD_NUMBER: _ClassVar[int]
    DE_FIELD_NUMBER: _ClassVar[int]
    en: str
    de: str
    def __init__(self, en: _Optional[str] = ..., de: _Optional[str] = ...) -> None: ...

class TutorialStep(_message.Message):
    __slots__ = ("step_number", "instruction", "image_url")
    STEP_NUMBER_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    step_number: int
    instruction: LocalizedText
    image_url: str
    def __init__(self, step_number: _Optional[int] = ..., instruction: _Optional[_Union[LocalizedText, _Mapping]] = ..., image_url: _Optional[str] = ...) -> None: ...

class Tutorial(_message.Message):
    __slots__ = ("id", "category", "title", "description", "thumbnail_url", "steps", "total_steps", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_URL_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    category: str
    title: LocalizedText
    description: LocalizedText
    thumbnail_url: str
    steps: _containers.RepeatedCompositeFieldContainer[TutorialStep]
    total_steps: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., category: _Optional[str] = ..., title: _Optional[_Union[LocalizedText, _Mapping]] = ..., description: _Optional[_Union[LocalizedText, _Mapping]] = ..., thumbnail_url: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[TutorialStep, _Mapping]]] = ..., total_steps: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTutorialsRequest(_message.Message):
    __slots__ = ("category",)
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    category: str
    def __init__(self, category: _Optional[str] = ...) -> None: ...

class ListTutorialsResponse(_message.Message):
    __slots__ = ("tutorials",)
    TUTORIALS_FIELD_NUMBER: _ClassVar[int]
    tutorials: _containers.RepeatedCompositeFieldContainer[Tutorial]
    def __init__(self, tutorials: _Optional[_Iterable[_Union[Tutorial, _Mapping]]] = ...) -> None: ...

class GetTutorialRequest(_message.Message):
    __slots__ = ("tutorial_id",)
    TUTORIAL_ID_FIELD_NUMBER: _ClassVar[int]
    tutorial_id: str
    def __init__(self, tutorial_id: _Optional[str] = ...) -> None: ...

class TutorialFields(_message.Message):
    __slots__ = ("category", "title", "description", "thumbnail_url", "steps")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_URL_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    category: str
    title: LocalizedText
    description: LocalizedText
    thumbnail_url: str
    steps: _containers.RepeatedCompositeFieldContainer[TutorialStep]
    def __init__(self, category: _Optional[str] = ..., title: _Optional[_Union[LocalizedText, _Mapping]] = ..., description: _Optional[_Union[LocalizedText, _Mapping]] = ..., thumbnail_url: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[TutorialStep, _Mapping]]] = ...) -> None: ...

class CreateTutorialRequest(_message.Message):
    __slots__ = ("user_id", "tutorial")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TUTORIAL_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    tutorial: TutorialFields
    def __init__(self, user_id: _Optional[str] = ..., tutorial: _Optional[_Union[TutorialFields, _Mapping]] = ...) -> None: ...

class UpdateTutorialRequest(_message.Message):
    __slots__ = ("user_id", "tutorial_id", "tutorial", "fields")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TUTORIAL_ID_FIELD_NUMBER: _ClassVar[int]
    TUTORIAL_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    tutorial_id: str
    tutorial: TutorialFields
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., tutorial_id: _Optional[str] = ..., tutorial: _Optional[_Union[TutorialFields, _Mapping]] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class DrawingVersion(_message.Message):
    __slots__ = ("id", "photo_id", "version", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    photo_id: str
    version: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., photo_id: _Optional[str] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Drawing(_message.Message):
    __slots__ = ("id", "user_id", "photo_id", "tutorial_id", "edits", "photo_available", "picture_story_count", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_ID_FIELD_NUMBER: _ClassVar[int]
    TUTORIAL_ID_FIELD_NUMBER: _ClassVar[int]
    EDITS_FIELD_NUMBER: _ClassVar[int]
    PHOTO_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    PICTURE_STORY_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    photo_id: str
    tutorial_id: str
    edits: _containers.RepeatedCompositeFieldContainer[DrawingVersion]
    photo_available: bool
    picture_story_count: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., photo_id: _Optional[str] = ..., tutorial_id: _Optional[str] = ..., edits: _Optional[_Iterable[_Union[DrawingVersion, _Mapping]]] = ..., photo_available: _Optional[bool] = ..., picture_story_count: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DrawingRef(_message.Message):
    __slots__ = ("user_id", "drawing_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DRAWING_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    drawing_id: str
    def __init__(self, user_id: _Optional[str] = ..., drawing_id: _Optional[str] = ...) -> None: ...

class CreateDrawingRequest(_message.Message):
    __slots__ = ("user_id", "photo_id", "tutorial_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_ID_FIELD_NUMBER: _ClassVar[int]
    TUTORIAL_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    photo_id: str
    tutorial_id: str
    def __init__(self, user_id: _Optional[str] = ..., photo_id: _Optional[str] = ..., tutorial_id: _Optional[str] = ...) -> None: ...

class AddDrawingEditRequest(_message.Message):
    __slots__ = ("user_id", "drawing_id", "photo_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DRAWING_ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    drawing_id: str
    photo_id: str
    def __init__(self, user_id: _Optional[str] = ..., drawing_id: _Optional[str] = ..., photo_id: _Optional[str] = ...) -> None: ...

class ListDrawingsRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "cursor")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    cursor: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListDrawingsResponse(_message.Message):
    __slots__ = ("drawings", "next_cursor")
    DRAWINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    drawings: _containers.RepeatedCompositeFieldContainer[Drawing]
    next_cursor: str
    def __init__(self, drawings: _Optional[_Iterable[_Union[Drawing, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class ModerationResult(_message.Message):
    __slots__ = ("checked", "checker", "flagged", "categories")
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    CHECKER_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    checked: bool
    checker: str
    flagged: bool
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, checked: _Optional[bool] = ..., checker: _Optional[str] = ..., flagged: _Optional[bool] = ..., categories: _Optional[_Iterable[str]] = ...) -> None: ...

class PictureStory(_message.Message):
    __slots__ = ("id", "user_id", "drawing_id", "photo_id", "title", "text", "direction", "generation_time_ms", "is_favorite", "moderation", "provider", "model", "is_language_model", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DRAWING_ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    GENERATION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    IS_FAVORITE_FIELD_NUMBER: _ClassVar[int]
    MODERATION_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IS_LANGUAGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    drawing_id: str
    photo_id: str
    title: LocalizedText
    text: LocalizedText
    direction: str
    generation_time_ms: int
    is_favorite: bool
    moderation: ModerationResult
    provider: str
    model: str
    is_language_model: bool
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., drawing_id: _Optional[str] = ..., photo_id: _Optional[str] = ..., title: _Optional[_Union[LocalizedText, _Mapping]] = ..., text: _Optional[_Union[LocalizedText, _Mapping]] = ..., direction: _Optional[str] = ..., generation_time_ms: _Optional[int] = ..., is_favorite: _Optional[bool] = ..., moderation: _Optional[_Union[ModerationResult, _Mapping]] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., is_language_model: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PictureStoryRef(_message.Message):
    __slots__ = ("user_id", "picture_story_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PICTURE_STORY_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    picture_story_id: str
    def __init__(self, user_id: _Optional[str] = ..., picture_story_id: _Optional[str] = ...) -> None: ...

class WritePictureStoryRequest(_message.Message):
    __slots__ = ("user_id", "drawing_id", "direction")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DRAWING_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    drawing_id: str
    direction: str
    def __init__(self, user_id: _Optional[str] = ..., drawing_id: _Optional[str] = ..., direction: _Optional[str] = ...) -> None: ...

class ListPictureStoriesRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "cursor", "favorite_only", "drawing_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    FAVORITE_ONLY_FIELD_NUMBER: _ClassVar[int]
    DRAWING_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    cursor: str
    favorite_only: bool
    drawing_id: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., cursor: _Optional[str] = ..., favorite_only: _Optional[bool] = ..., drawing_id: _Optional[str] = ...) -> None: ...

class ListPictureStoriesResponse(_message.Message):
    __slots__ = ("picture_stories", "next_cursor")
    PICTURE_STORIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    picture_stories: _containers.RepeatedCompositeFieldContainer[PictureStory]
    next_cursor: str
    def __init__(self, picture_stories: _Optional[_Iterable[_Union[PictureStory, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class UpdatePictureStoryRequest(_message.Message):
    __slots__ = ("user_id", "picture_story_id", "is_favorite")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PICTURE_STORY_ID_FIELD_NUMBER: _ClassVar[int]
    IS_FAVORITE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    picture_story_id: str
    is_favorite: bool
    def __init__(self, user_id: _Optional[str] = ..., picture_story_id: _Optional[str] = ..., is_favorite: _Optional[bool] = ...) -> None: ...
