import datetime

from fabula.common.v1 import money_pb2 as _money_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReserveGenerationRequest(_message.Message):
    __slots__ = ("user_id", "reservation_id", "estimated_cost", "estimated_cost_usd")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    reservation_id: str
    estimated_cost: _money_pb2.Money
    estimated_cost_usd: str
    def __init__(self, user_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., estimated_cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., estimated_cost_usd: _Optional[str] = ...) -> None: ...

class Reservation(_message.Message):
    __slots__ = ("reservation_id", "expires_at")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, reservation_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReleaseReservationRequest(_message.Message):
    __slots__ = ("user_id", "reservation_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    reservation_id: str
    def __init__(self, user_id: _Optional[str] = ..., reservation_id: _Optional[str] = ...) -> None: ...

class ReleaseReservationResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: _Optional[bool] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class UsageSummary(_message.Message):
    __slots__ = ("plan", "period_start", "period_end", "generations_used", "generations_limit", "generations_reserved", "cost_used", "cost_limit", "cost_used_usd", "cost_limit_usd")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_USED_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_RESERVED_FIELD_NUMBER: _ClassVar[int]
    COST_USED_FIELD_NUMBER: _ClassVar[int]
    COST_LIMIT_FIELD_NUMBER: _ClassVar[int]
    COST_USED_USD_FIELD_NUMBER: _ClassVar[int]
    COST_LIMIT_USD_FIELD_NUMBER: _ClassVar[int]
    plan: str
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    generations_used: int
    generations_limit: int
    generations_reserved: int
    cost_used: _money_pb2.Money
    cost_limit: _money_pb2.Money
    cost_used_usd: str
    cost_limit_usd: str
    def __init__(self, plan: _Optional[str] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., generations_used: _Optional[int] = ..., generations_limit: _Optional[int] = ..., generations_reserved: _Optional[int] = ..., cost_used: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., cost_limit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., cost_used_usd: _Optional[str] = ..., cost_limit_usd: _Optional[str] = ...) -> None: ...

class SetPlanRequest(_message.Message):
    __slots__ = ("user_id", "plan", "actor", "reason")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    plan: str
    actor: str
    reason: str
    def __init__(self, user_id: _Optional[str] = ..., plan: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
