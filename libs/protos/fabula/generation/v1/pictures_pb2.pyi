from fabula.generation.v1 import generation_pb2 as _generation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PictureStoryRequest(_message.Message):
    __slots__ = ("user_id", "subject", "generation_id", "delivery", "image", "image_content_type", "direction")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    subject: _generation_pb2.SubjectRef
    generation_id: str
    delivery: _generation_pb2.Delivery
    image: bytes
    image_content_type: str
    direction: str
    def __init__(self, user_id: _Optional[str] = ..., subject: _Optional[_Union[_generation_pb2.SubjectRef, _Mapping]] = ..., generation_id: _Optional[str] = ..., delivery: _Optional[_Union[_generation_pb2.Delivery, str]] = ..., image: _Optional[bytes] = ..., image_content_type: _Optional[str] = ..., direction: _Optional[str] = ...) -> None: ...

class PictureModeration(_message.Message):
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

class PictureStoryResponse(_message.Message):
    __slots__ = ("generation_id", "title_en", "text_en", "title_de", "text_de", "provider", "model", "is_language_model", "usage", "moderation", "duration_ms")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_EN_FIELD_NUMBER: _ClassVar[int]
    TEXT_EN_FIELD_NUMBER: _ClassVar[int]
    TITLE_DE_FIELD_NUMBER: _ClassVar[int]
    TEXT_DE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IS_LANGUAGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    MODERATION_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    generation_id: str
    title_en: str
    text_en: str
    title_de: str
    text_de: str
    provider: str
    model: str
    is_language_model: bool
    usage: _generation_pb2.Usage
    moderation: PictureModeration
    duration_ms: int
    def __init__(self, generation_id: _Optional[str] = ..., title_en: _Optional[str] = ..., text_en: _Optional[str] = ..., title_de: _Optional[str] = ..., text_de: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., is_language_model: _Optional[bool] = ..., usage: _Optional[_Union[_generation_pb2.Usage, _Mapping]] = ..., moderation: _Optional[_Union[PictureModeration, _Mapping]] = ..., duration_ms: _Optional[int] = ...) -> None: ...
