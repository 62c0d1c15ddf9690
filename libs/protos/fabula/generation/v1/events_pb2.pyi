import datetime

from fabula.common.v1 import money_pb2 as _money_pb2
from fabula.generation.v1 import generation_pb2 as _generation_pb2
from fabula.generation.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerationOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GENERATION_OUTCOME_UNSPECIFIED: _ClassVar[GenerationOutcome]
    GENERATION_OUTCOME_COMPLETED: _ClassVar[GenerationOutcome]
    GENERATION_OUTCOME_CANCELLED: _ClassVar[GenerationOutcome]
    GENERATION_OUTCOME_FAILED: _ClassVar[GenerationOutcome]
GENERATION_OUTCOME_UNSPECIFIED: GenerationOutcome
GENERATION_OUTCOME_COMPLETED: GenerationOutcome
GENERATION_OUTCOME_CANCELLED: GenerationOutcome
GENERATION_OUTCOME_FAILED: GenerationOutcome

class UsageRecorded(_message.Message):
    __slots__ = ("event_id", "generation_id", "user_id", "purpose", "subject", "story_id", "reservation_id", "provider", "model", "prompt_tokens", "completion_tokens", "usage_estimated", "cost", "cost_usd", "outcome", "occurred_at", "delivery", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    USAGE_ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    generation_id: str
    user_id: str
    purpose: _generation_pb2.Purpose
    subject: _generation_pb2.SubjectRef
    story_id: str
    reservation_id: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool
    cost: _money_pb2.Money
    cost_usd: str
    outcome: GenerationOutcome
    occurred_at: _timestamp_pb2.Timestamp
    delivery: _generation_pb2.Delivery
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, event_id: _Optional[str] = ..., generation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., purpose: _Optional[_Union[_generation_pb2.Purpose, str]] = ..., subject: _Optional[_Union[_generation_pb2.SubjectRef, _Mapping]] = ..., story_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., usage_estimated: _Optional[bool] = ..., cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., cost_usd: _Optional[str] = ..., outcome: _Optional[_Union[GenerationOutcome, str]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivery: _Optional[_Union[_generation_pb2.Delivery, str]] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class JobCompleted(_message.Message):
    __slots__ = ("event_id", "job_id", "user_id", "project_id", "parent_narrative_id", "title", "production_type", "genre", "text", "word_count", "quality_metrics", "overall_quality_score", "cost", "tokens_used", "occurred_at")
    class QualityMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_NARRATIVE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_METRICS_FIELD_NUMBER: _ClassVar[int]
    OVERALL_QUALITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    TOKENS_USED_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    job_id: str
    user_id: str
    project_id: str
    parent_narrative_id: str
    title: str
    production_type: _jobs_pb2.ProductionType
    genre: str
    text: str
    word_count: int
    quality_metrics: _containers.ScalarMap[str, float]
    overall_quality_score: float
    cost: _money_pb2.Money
    tokens_used: int
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., job_id: _Optional[str] = ..., user_id: _Optional[str] = ..., project_id: _Optional[str] = ..., parent_narrative_id: _Optional[str] = ..., title: _Optional[str] = ..., production_type: _Optional[_Union[_jobs_pb2.ProductionType, str]] = ..., genre: _Optional[str] = ..., text: _Optional[str] = ..., word_count: _Optional[int] = ..., quality_metrics: _Optional[_Mapping[str, float]] = ..., overall_quality_score: _Optional[float] = ..., cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., tokens_used: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
