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

class PhotoStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PHOTO_STATUS_UNSPECIFIED: _ClassVar[PhotoStatus]
    PHOTO_STATUS_PENDING: _ClassVar[PhotoStatus]
    PHOTO_STATUS_UPLOADED: _ClassVar[PhotoStatus]
    PHOTO_STATUS_PROCESSING: _ClassVar[PhotoStatus]
    PHOTO_STATUS_COMPLETED: _ClassVar[PhotoStatus]
    PHOTO_STATUS_FAILED: _ClassVar[PhotoStatus]
PHOTO_STATUS_UNSPECIFIED: PhotoStatus
PHOTO_STATUS_PENDING: PhotoStatus
PHOTO_STATUS_UPLOADED: PhotoStatus
PHOTO_STATUS_PROCESSING: PhotoStatus
PHOTO_STATUS_COMPLETED: PhotoStatus
PHOTO_STATUS_FAILED: PhotoStatus

class Rendition(_message.Message):
    __slots__ = ("name", "content_type", "width", "height", "size_bytes", "url")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    name: str
    content_type: str
    width: int
    height: int
    size_bytes: int
    url: str
    def __init__(self, name: _Optional[str] = ..., content_type: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., size_bytes: _Optional[int] = ..., url: _Optional[str] = ...) -> None: ...

class Photo(_message.Message):
    __slots__ = ("id", "user_id", "status", "content_type", "size_bytes", "object_key", "failure_reason", "width", "height", "renditions", "urls_expire_at", "created_at", "updated_at", "processed_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    RENDITIONS_FIELD_NUMBER: _ClassVar[int]
    URLS_EXPIRE_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    status: PhotoStatus
    content_type: str
    size_bytes: int
    object_key: str
    failure_reason: str
    width: int
    height: int
    renditions: _containers.RepeatedCompositeFieldContainer[Rendition]
    urls_expire_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    processed_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., status: _Optional[_Union[PhotoStatus, str]] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., object_key: _Optional[str] = ..., failure_reason: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., renditions: _Optional[_Iterable[_Union[Rendition, _Mapping]]] = ..., urls_expire_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., processed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PhotoRef(_message.Message):
    __slots__ = ("user_id", "photo_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    photo_id: str
    def __init__(self, user_id: _Optional[str] = ..., photo_id: _Optional[str] = ...) -> None: ...

class CreatePhotoRequest(_message.Message):
    __slots__ = ("user_id", "content_type", "size_bytes", "filename")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    content_type: str
    size_bytes: int
    filename: str
    def __init__(self, user_id: _Optional[str] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., filename: _Optional[str] = ...) -> None: ...

class Upload(_message.Message):
    __slots__ = ("url", "method", "headers", "fields", "expires_at")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    URL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    url: str
    method: str
    headers: _containers.ScalarMap[str, str]
    fields: _containers.ScalarMap[str, str]
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, url: _Optional[str] = ..., method: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., fields: _Optional[_Mapping[str, str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreatePhotoResponse(_message.Message):
    __slots__ = ("photo", "upload")
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    photo: Photo
    upload: Upload
    def __init__(self, photo: _Optional[_Union[Photo, _Mapping]] = ..., upload: _Optional[_Union[Upload, _Mapping]] = ...) -> None: ...

class ListPhotosRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "cursor")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    cursor: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListPhotosResponse(_message.Message):
    __slots__ = ("photos", "next_cursor")
    PHOTOS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    photos: _containers.RepeatedCompositeFieldContainer[Photo]
    next_cursor: str
    def __init__(self, photos: _Optional[_Iterable[_Union[Photo, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class ReadPhotoRequest(_message.Message):
    __slots__ = ("user_id", "photo_id", "rendition", "max_bytes")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PHOTO_ID_FIELD_NUMBER: _ClassVar[int]
    RENDITION_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    photo_id: str
    rendition: str
    max_bytes: int
    def __init__(self, user_id: _Optional[str] = ..., photo_id: _Optional[str] = ..., rendition: _Optional[str] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class ReadPhotoResponse(_message.Message):
    __slots__ = ("data", "content_type", "width", "height")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    content_type: str
    width: int
    height: int
    def __init__(self, data: _Optional[bytes] = ..., content_type: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class UploadChunk(_message.Message):
    __slots__ = ("token", "data", "content_type")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    token: str
    data: bytes
    content_type: str
    def __init__(self, token: _Optional[str] = ..., data: _Optional[bytes] = ..., content_type: _Optional[str] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class DownloadChunk(_message.Message):
    __slots__ = ("content_type", "size_bytes", "data")
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    content_type: str
    size_bytes: int
    data: bytes
    def __init__(self, content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...
