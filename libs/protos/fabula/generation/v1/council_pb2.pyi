from fabula.common.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConversationTurn(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class FollowUpAnswer(_message.Message):
    __slots__ = ("question", "answer")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    question: str
    answer: str
    def __init__(self, question: _Optional[str] = ..., answer: _Optional[str] = ...) -> None: ...

class DeliberateRequest(_message.Message):
    __slots__ = ("user_id", "message_id", "conversation_id", "question", "history", "follow_ups", "council_size", "want_title", "done_answers", "done_reviews")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UPS_FIELD_NUMBER: _ClassVar[int]
    COUNCIL_SIZE_FIELD_NUMBER: _ClassVar[int]
    WANT_TITLE_FIELD_NUMBER: _ClassVar[int]
    DONE_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    DONE_REVIEWS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    message_id: str
    conversation_id: str
    question: str
    history: _containers.RepeatedCompositeFieldContainer[ConversationTurn]
    follow_ups: _containers.RepeatedCompositeFieldContainer[FollowUpAnswer]
    council_size: int
    want_title: bool
    done_answers: _containers.RepeatedCompositeFieldContainer[MemberAnswer]
    done_reviews: _containers.RepeatedCompositeFieldContainer[MemberReview]
    def __init__(self, user_id: _Optional[str] = ..., message_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., question: _Optional[str] = ..., history: _Optional[_Iterable[_Union[ConversationTurn, _Mapping]]] = ..., follow_ups: _Optional[_Iterable[_Union[FollowUpAnswer, _Mapping]]] = ..., council_size: _Optional[int] = ..., want_title: _Optional[bool] = ..., done_answers: _Optional[_Iterable[_Union[MemberAnswer, _Mapping]]] = ..., done_reviews: _Optional[_Iterable[_Union[MemberReview, _Mapping]]] = ...) -> None: ...

class StageUsage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "cost", "duration_ms")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    cost: _money_pb2.Money
    duration_ms: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class MemberAnswer(_message.Message):
    __slots__ = ("model", "text", "error", "usage")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    model: str
    text: str
    error: str
    usage: StageUsage
    def __init__(self, model: _Optional[str] = ..., text: _Optional[str] = ..., error: _Optional[str] = ..., usage: _Optional[_Union[StageUsage, _Mapping]] = ...) -> None: ...

class MemberReview(_message.Message):
    __slots__ = ("model", "text", "label_to_model", "ranking", "ranking_parsed", "error", "usage")
    class LabelToModelEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LABEL_TO_MODEL_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    RANKING_PARSED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    model: str
    text: str
    label_to_model: _containers.ScalarMap[str, str]
    ranking: _containers.RepeatedScalarFieldContainer[str]
    ranking_parsed: bool
    error: str
    usage: StageUsage
    def __init__(self, model: _Optional[str] = ..., text: _Optional[str] = ..., label_to_model: _Optional[_Mapping[str, str]] = ..., ranking: _Optional[_Iterable[str]] = ..., ranking_parsed: _Optional[bool] = ..., error: _Optional[str] = ..., usage: _Optional[_Union[StageUsage, _Mapping]] = ...) -> None: ...

class RankedMember(_message.Message):
    __slots__ = ("model", "average_rank", "votes")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_RANK_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    model: str
    average_rank: float
    votes: int
    def __init__(self, model: _Optional[str] = ..., average_rank: _Optional[float] = ..., votes: _Optional[int] = ...) -> None: ...

class ChairmanAnswer(_message.Message):
    __slots__ = ("model", "text", "fell_back_from", "usage")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FELL_BACK_FROM_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    model: str
    text: str
    fell_back_from: str
    usage: StageUsage
    def __init__(self, model: _Optional[str] = ..., text: _Optional[str] = ..., fell_back_from: _Optional[str] = ..., usage: _Optional[_Union[StageUsage, _Mapping]] = ...) -> None: ...

class CouncilDelta(_message.Message):
    __slots__ = ("stage", "model", "text")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    stage: int
    model: str
    text: str
    def __init__(self, stage: _Optional[int] = ..., model: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class CouncilEvent(_message.Message):
    __slots__ = ("stage_started", "delta", "answer", "review", "aggregate", "chairman", "title", "done")
    STAGE_STARTED_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    CHAIRMAN_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    stage_started: int
    delta: CouncilDelta
    answer: MemberAnswer
    review: MemberReview
    aggregate: AggregateRanking
    chairman: ChairmanAnswer
    title: str
    done: CouncilDone
    def __init__(self, stage_started: _Optional[int] = ..., delta: _Optional[_Union[CouncilDelta, _Mapping]] = ..., answer: _Optional[_Union[MemberAnswer, _Mapping]] = ..., review: _Optional[_Union[MemberReview, _Mapping]] = ..., aggregate: _Optional[_Union[AggregateRanking, _Mapping]] = ..., chairman: _Optional[_Union[ChairmanAnswer, _Mapping]] = ..., title: _Optional[str] = ..., done: _Optional[_Union[CouncilDone, _Mapping]] = ...) -> None: ...

class AggregateRanking(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[RankedMember]
    def __init__(self, members: _Optional[_Iterable[_Union[RankedMember, _Mapping]]] = ...) -> None: ...

class CouncilDone(_message.Message):
    __slots__ = ("usage",)
    USAGE_FIELD_NUMBER: _ClassVar[int]
    usage: StageUsage
    def __init__(self, usage: _Optional[_Union[StageUsage, _Mapping]] = ...) -> None: ...

class ClarifyingQuestionsRequest(_message.Message):
    __slots__ = ("user_id", "conversation_id", "question", "history", "max_questions")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    MAX_QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    conversation_id: str
    question: str
    history: _containers.RepeatedCompositeFieldContainer[ConversationTurn]
    max_questions: int
    def __init__(self, user_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., question: _Optional[str] = ..., history: _Optional[_Iterable[_Union[ConversationTurn, _Mapping]]] = ..., max_questions: _Optional[int] = ...) -> None: ...

class ClarifyingQuestionsResponse(_message.Message):
    __slots__ = ("questions",)
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    questions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, questions: _Optional[_Iterable[str]] = ...) -> None: ...
