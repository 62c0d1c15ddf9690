import datetime

from fabula.common.v1 import money_pb2 as _money_pb2
from fabula.generation.v1 import jobs_pb2 as _jobs_pb2
from fabula.stories.v1 import stories_pb2 as _stories_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Project(_message.Message):
    __slots__ = ("id", "user_id", "name", "description", "default_genre", "default_production_type", "world_notes", "narrative_count", "total_word_count", "total_cost", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_GENRE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PRODUCTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    WORLD_NOTES_FIELD_NUMBER: _ClassVar[int]
    NARRATIVE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_WORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    name: str
    description: str
    default_genre: str
    default_production_type: _jobs_pb2.ProductionType
    world_notes: str
    narrative_count: int
    total_word_count: int
    total_cost: _money_pb2.Money
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., default_genre: _Optional[str] = ..., default_production_type: _Optional[_Union[_jobs_pb2.ProductionType, str]] = ..., world_notes: _Optional[str] = ..., narrative_count: _Optional[int] = ..., total_word_count: _Optional[int] = ..., total_cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateProjectRequest(_message.Message):
    __slots__ = ("user_id", "name", "description", "default_genre", "default_production_type", "world_notes")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_GENRE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PRODUCTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    WORLD_NOTES_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    name: str
    description: str
    default_genre: str
    default_production_type: _jobs_pb2.ProductionType
    world_notes: str
    def __init__(self, user_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., default_genre: _Optional[str] = ..., default_production_type: _Optional[_Union[_jobs_pb2.ProductionType, str]] = ..., world_notes: _Optional[str] = ...) -> None: ...

class ProjectRef(_message.Message):
    __slots__ = ("user_id", "project_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    project_id: str
    def __init__(self, user_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class ListProjectsRequest(_message.Message):
    __slots__ = ("user_id", "limit", "cursor")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    limit: int
    cursor: str
    def __init__(self, user_id: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListProjectsResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Project]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[Project, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class UpdateProjectRequest(_message.Message):
    __slots__ = ("user_id", "project_id", "fields", "name", "description", "default_genre", "default_production_type", "world_notes")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_GENRE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PRODUCTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    WORLD_NOTES_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    project_id: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    name: str
    description: str
    default_genre: str
    default_production_type: _jobs_pb2.ProductionType
    world_notes: str
    def __init__(self, user_id: _Optional[str] = ..., project_id: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., default_genre: _Optional[str] = ..., default_production_type: _Optional[_Union[_jobs_pb2.ProductionType, str]] = ..., world_notes: _Optional[str] = ...) -> None: ...

class Narrative(_message.Message):
    __slots__ = ("id", "project_id", "user_id", "job_id", "parent_narrative_id", "root_narrative_id", "version", "title", "production_type", "genre", "text", "word_count", "quality_metrics", "overall_quality_score", "generation_cost", "tokens_used", "view_count", "download_count", "export_formats", "created_at")
    class QualityMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_NARRATIVE_ID_FIELD_NUMBER: _ClassVar[int]
    ROOT_NARRATIVE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_METRICS_FIELD_NUMBER: _ClassVar[int]
    OVERALL_QUALITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_COST_FIELD_NUMBER: _ClassVar[int]
    TOKENS_USED_FIELD_NUMBER: _ClassVar[int]
    VIEW_COUNT_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPORT_FORMATS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    user_id: str
    job_id: str
    parent_narrative_id: str
    root_narrative_id: str
    version: int
    title: str
    production_type: _jobs_pb2.ProductionType
    genre: str
    text: str
    word_count: int
    quality_metrics: _containers.ScalarMap[str, float]
    overall_quality_score: float
    generation_cost: _money_pb2.Money
    tokens_used: int
    view_count: int
    download_count: int
    export_formats: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., user_id: _Optional[str] = ..., job_id: _Optional[str] = ..., parent_narrative_id: _Optional[str] = ..., root_narrative_id: _Optional[str] = ..., version: _Optional[int] = ..., title: _Optional[str] = ..., production_type: _Optional[_Union[_jobs_pb2.ProductionType, str]] = ..., genre: _Optional[str] = ..., text: _Optional[str] = ..., word_count: _Optional[int] = ..., quality_metrics: _Optional[_Mapping[str, float]] = ..., overall_quality_score: _Optional[float] = ..., generation_cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., tokens_used: _Optional[int] = ..., view_count: _Optional[int] = ..., download_count: _Optional[int] = ..., export_formats: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NarrativeRef(_message.Message):
    __slots__ = ("user_id", "narrative_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NARRATIVE_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    narrative_id: str
    def __init__(self, user_id: _Optional[str] = ..., narrative_id: _Optional[str] = ...) -> None: ...

class GetNarrativeRequest(_message.Message):
    __slots__ = ("user_id", "narrative_id", "count_view")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NARRATIVE_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_VIEW_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    narrative_id: str
    count_view: bool
    def __init__(self, user_id: _Optional[str] = ..., narrative_id: _Optional[str] = ..., count_view: _Optional[bool] = ...) -> None: ...

class ListNarrativesRequest(_message.Message):
    __slots__ = ("user_id", "project_id", "limit", "cursor")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    project_id: str
    limit: int
    cursor: str
    def __init__(self, user_id: _Optional[str] = ..., project_id: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListNarrativesResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Narrative]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[Narrative, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class ListNarrativeVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[Narrative]
    def __init__(self, versions: _Optional[_Iterable[_Union[Narrative, _Mapping]]] = ...) -> None: ...

class ExportNarrativeRequest(_message.Message):
    __slots__ = ("user_id", "narrative_id", "format", "author_name")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NARRATIVE_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_NAME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    narrative_id: str
    format: _stories_pb2.ExportFormat
    author_name: str
    def __init__(self, user_id: _Optional[str] = ..., narrative_id: _Optional[str] = ..., format: _Optional[_Union[_stories_pb2.ExportFormat, str]] = ..., author_name: _Optional[str] = ...) -> None: ...
