import datetime

from fabula.generation.v1 import council_pb2 as _council_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Conversation(_message.Message):
    __slots__ = ("id", "user_id", "title", "starred", "messages", "message_count", "pending_questions", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    STARRED_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PENDING_QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    title: str
    starred: bool
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    message_count: int
    pending_questions: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., title: _Optional[str] = ..., starred: _Optional[bool] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., message_count: _Optional[int] = ..., pending_questions: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CouncilRecord(_message.Message):
    __slots__ = ("answers", "reviews", "aggregate", "chairman", "failed_members", "usage", "follow_ups")
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    CHAIRMAN_FIELD_NUMBER: _ClassVar[int]
    FAILED_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UPS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[_council_pb2.MemberAnswer]
    reviews: _containers.RepeatedCompositeFieldContainer[_council_pb2.MemberReview]
    aggregate: _council_pb2.AggregateRanking
    chairman: _council_pb2.ChairmanAnswer
    failed_members: _containers.RepeatedScalarFieldContainer[str]
    usage: _council_pb2.StageUsage
    follow_ups: _containers.RepeatedCompositeFieldContainer[_council_pb2.FollowUpAnswer]
    def __init__(self, answers: _Optional[_Iterable[_Union[_council_pb2.MemberAnswer, _Mapping]]] = ..., reviews: _Optional[_Iterable[_Union[_council_pb2.MemberReview, _Mapping]]] = ..., aggregate: _Optional[_Union[_council_pb2.AggregateRanking, _Mapping]] = ..., chairman: _Optional[_Union[_council_pb2.ChairmanAnswer, _Mapping]] = ..., failed_members: _Optional[_Iterable[str]] = ..., usage: _Optional[_Union[_council_pb2.StageUsage, _Mapping]] = ..., follow_ups: _Optional[_Iterable[_Union[_council_pb2.FollowUpAnswer, _Mapping]]] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("id", "role", "content", "council", "created_at", "status")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    COUNCIL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: str
    content: str
    council: CouncilRecord
    created_at: _timestamp_pb2.Timestamp
    status: str
    def __init__(self, id: _Optional[str] = ..., role: _Optional[str] = ..., content: _Optional[str] = ..., council: _Optional[_Union[CouncilRecord, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ...) -> None: ...

class CreateConversationRequest(_message.Message):
    __slots__ = ("user_id", "title")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    title: str
    def __init__(self, user_id: _Optional[str] = ..., title: _Optional[str] = ...) -> None: ...

class ExportConversationsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ConversationRef(_message.Message):
    __slots__ = ("user_id", "conversation_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    conversation_id: str
    def __init__(self, user_id: _Optional[str] = ..., conversation_id: _Optional[str] = ...) -> None: ...

class ListConversationsRequest(_message.Message):
    __slots__ = ("user_id", "starred", "limit", "cursor")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STARRED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    starred: bool
    limit: int
    cursor: str
    def __init__(self, user_id: _Optional[str] = ..., starred: _Optional[bool] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListConversationsResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Conversation]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[Conversation, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class UpdateConversationRequest(_message.Message):
    __slots__ = ("user_id", "conversation_id", "title", "starred")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    STARRED_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    conversation_id: str
    title: str
    starred: bool
    def __init__(self, user_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., title: _Optional[str] = ..., starred: _Optional[bool] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("user_id", "conversation_id", "content", "idempotency_key")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    conversation_id: str
    content: str
    idempotency_key: str
    def __init__(self, user_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., content: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ResumeMessageRequest(_message.Message):
    __slots__ = ("user_id", "conversation_id", "message_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    conversation_id: str
    message_id: str
    def __init__(self, user_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ...) -> None: ...

class AnswerFollowUpRequest(_message.Message):
    __slots__ = ("user_id", "conversation_id", "answers")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    conversation_id: str
    answers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., answers: _Optional[_Iterable[str]] = ...) -> None: ...

class ClarifyingQuestions(_message.Message):
    __slots__ = ("questions",)
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    questions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, questions: _Optional[_Iterable[str]] = ...) -> None: ...

class ConversationEvent(_message.Message):
    __slots__ = ("council", "questions", "message")
    COUNCIL_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    council: _council_pb2.CouncilEvent
    questions: ClarifyingQuestions
    message: Message
    def __init__(self, council: _Optional[_Union[_council_pb2.CouncilEvent, _Mapping]] = ..., questions: _Optional[_Union[ClarifyingQuestions, _Mapping]] = ..., message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class ImportedMessage(_message.Message):
    __slots__ = ("role", "content", "council", "follow_ups")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    COUNCIL_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UPS_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    council: CouncilRecord
    follow_ups: _containers.RepeatedCompositeFieldContainer[_council_pb2.FollowUpAnswer]
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ..., council: _Optional[_Union[CouncilRecord, _Mapping]] = ..., follow_ups: _Optional[_Iterable[_Union[_council_pb2.FollowUpAnswer, _Mapping]]] = ...) -> None: ...

class ImportConversationRequest(_message.Message):
    __slots__ = ("user_id", "source", "original_id", "title", "starred", "created_at", "messages")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    STARRED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    source: str
    original_id: str
    title: str
    starred: bool
    created_at: _timestamp_pb2.Timestamp
    messages: _containers.RepeatedCompositeFieldContainer[ImportedMessage]
    def __init__(self, user_id: _Optional[str] = ..., source: _Optional[str] = ..., original_id: _Optional[str] = ..., title: _Optional[str] = ..., starred: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[ImportedMessage, _Mapping]]] = ...) -> None: ...

class ImportConversationResponse(_message.Message):
    __slots__ = ("conversation_id", "imported")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    imported: bool
    def __init__(self, conversation_id: _Optional[str] = ..., imported: _Optional[bool] = ...) -> None: ...
