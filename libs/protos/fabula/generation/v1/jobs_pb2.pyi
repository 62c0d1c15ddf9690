import datetime

from fabula.common.v1 import money_pb2 as _money_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProductionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRODUCTION_TYPE_UNSPECIFIED: _ClassVar[ProductionType]
    PRODUCTION_TYPE_SHORT_STORY: _ClassVar[ProductionType]
    PRODUCTION_TYPE_NOVELETTE: _ClassVar[ProductionType]
    PRODUCTION_TYPE_NOVELLA: _ClassVar[ProductionType]
    PRODUCTION_TYPE_CHAPTER: _ClassVar[ProductionType]
    PRODUCTION_TYPE_SCENE: _ClassVar[ProductionType]

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_QUEUED: _ClassVar[JobStatus]
    JOB_STATUS_RUNNING: _ClassVar[JobStatus]
    JOB_STATUS_COMPLETED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]

class JobEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_EVENT_TYPE_UNSPECIFIED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_STAGE_STARTED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_STAGE_FINISHED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_PROGRESS: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_TEXT: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_DONE: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_FAILED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_CANCELLED: _ClassVar[JobEventType]
    JOB_EVENT_TYPE_QUEUED: _ClassVar[JobEventType]
PRODUCTION_TYPE_UNSPECIFIED: ProductionType
PRODUCTION_TYPE_SHORT_STORY: ProductionType
PRODUCTION_TYPE_NOVELETTE: ProductionType
PRODUCTION_TYPE_NOVELLA: ProductionType
PRODUCTION_TYPE_CHAPTER: ProductionType
PRODUCTION_TYPE_SCENE: ProductionType
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_QUEUED: JobStatus
JOB_STATUS_RUNNING: JobStatus
JOB_STATUS_COMPLETED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_STATUS_CANCELLED: JobStatus
JOB_EVENT_TYPE_UNSPECIFIED: JobEventType
JOB_EVENT_TYPE_STAGE_STARTED: JobEventType
JOB_EVENT_TYPE_STAGE_FINISHED: JobEventType
JOB_EVENT_TYPE_PROGRESS: JobEventType
JOB_EVENT_TYPE_TEXT: JobEventType
JOB_EVENT_TYPE_DONE: JobEventType
JOB_EVENT_TYPE_FAILED: JobEventType
JOB_EVENT_TYPE_CANCELLED: JobEventType
JOB_EVENT_TYPE_QUEUED: JobEventType

class ProductionBrief(_message.Message):
    __slots__ = ("production_type", "genre", "premise", "characters", "setting", "tone", "target_words", "world_notes", "locale")
    PRODUCTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    PREMISE_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    SETTING_FIELD_NUMBER: _ClassVar[int]
    TONE_FIELD_NUMBER: _ClassVar[int]
    TARGET_WORDS_FIELD_NUMBER: _ClassVar[int]
    WORLD_NOTES_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    production_type: ProductionType
    genre: str
    premise: str
    characters: _containers.RepeatedScalarFieldContainer[str]
    setting: str
    tone: str
    target_words: int
    world_notes: str
    locale: str
    def __init__(self, production_type: _Optional[_Union[ProductionType, str]] = ..., genre: _Optional[str] = ..., premise: _Optional[str] = ..., characters: _Optional[_Iterable[str]] = ..., setting: _Optional[str] = ..., tone: _Optional[str] = ..., target_words: _Optional[int] = ..., world_notes: _Optional[str] = ..., locale: _Optional[str] = ...) -> None: ...

class Revision(_message.Message):
    __slots__ = ("parent_narrative_id", "parent_title", "parent_text", "instructions", "locked_sections")
    PARENT_NARRATIVE_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_TITLE_FIELD_NUMBER: _ClassVar[int]
    PARENT_TEXT_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    LOCKED_SECTIONS_FIELD_NUMBER: _ClassVar[int]
    parent_narrative_id: str
    parent_title: str
    parent_text: str
    instructions: str
    locked_sections: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, parent_narrative_id: _Optional[str] = ..., parent_title: _Optional[str] = ..., parent_text: _Optional[str] = ..., instructions: _Optional[str] = ..., locked_sections: _Optional[_Iterable[int]] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("user_id", "project_id", "brief", "revision", "idempotency_key")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    BRIEF_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    project_id: str
    brief: ProductionBrief
    revision: Revision
    idempotency_key: str
    def __init__(self, user_id: _Optional[str] = ..., project_id: _Optional[str] = ..., brief: _Optional[_Union[ProductionBrief, _Mapping]] = ..., revision: _Optional[_Union[Revision, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class JobRef(_message.Message):
    __slots__ = ("user_id", "job_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    job_id: str
    def __init__(self, user_id: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class RetryJobRequest(_message.Message):
    __slots__ = ("user_id", "job_id", "from_stage")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STAGE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    job_id: str
    from_stage: str
    def __init__(self, user_id: _Optional[str] = ..., job_id: _Optional[str] = ..., from_stage: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("user_id", "project_id", "status", "limit", "cursor")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    project_id: str
    status: JobStatus
    limit: int
    cursor: str
    def __init__(self, user_id: _Optional[str] = ..., project_id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Job]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "user_id", "project_id", "status", "brief", "parent_narrative_id", "current_stage", "completed_stages", "stages", "progress_percentage", "tokens_used", "estimated_cost", "estimated_generations", "actual_cost", "created_at", "started_at", "completed_at", "duration_seconds", "error_message", "retry_count", "can_resume")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BRIEF_FIELD_NUMBER: _ClassVar[int]
    PARENT_NARRATIVE_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STAGE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_STAGES_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_USED_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_COST_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    CAN_RESUME_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    project_id: str
    status: JobStatus
    brief: ProductionBrief
    parent_narrative_id: str
    current_stage: str
    completed_stages: _containers.RepeatedScalarFieldContainer[str]
    stages: _containers.RepeatedScalarFieldContainer[str]
    progress_percentage: float
    tokens_used: int
    estimated_cost: _money_pb2.Money
    estimated_generations: int
    actual_cost: _money_pb2.Money
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    duration_seconds: float
    error_message: str
    retry_count: int
    can_resume: bool
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., project_id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., brief: _Optional[_Union[ProductionBrief, _Mapping]] = ..., parent_narrative_id: _Optional[str] = ..., current_stage: _Optional[str] = ..., completed_stages: _Optional[_Iterable[str]] = ..., stages: _Optional[_Iterable[str]] = ..., progress_percentage: _Optional[float] = ..., tokens_used: _Optional[int] = ..., estimated_cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., estimated_generations: _Optional[int] = ..., actual_cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_seconds: _Optional[float] = ..., error_message: _Optional[str] = ..., retry_count: _Optional[int] = ..., can_resume: _Optional[bool] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("user_id", "job_id", "after_sequence")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    job_id: str
    after_sequence: int
    def __init__(self, user_id: _Optional[str] = ..., job_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("sequence", "type", "stage", "progress_percentage", "text", "job", "occurred_at")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    type: JobEventType
    stage: str
    progress_percentage: float
    text: str
    job: Job
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., type: _Optional[_Union[JobEventType, str]] = ..., stage: _Optional[str] = ..., progress_percentage: _Optional[float] = ..., text: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
