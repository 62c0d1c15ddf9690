from fabula.common.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GENERATION_STATE_UNSPECIFIED: _ClassVar[GenerationState]
    GENERATION_STATE_UNKNOWN: _ClassVar[GenerationState]
    GENERATION_STATE_STARTED: _ClassVar[GenerationState]
    GENERATION_STATE_FINISHED: _ClassVar[GenerationState]

class Purpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURPOSE_UNSPECIFIED: _ClassVar[Purpose]
    PURPOSE_STORY_OPENING: _ClassVar[Purpose]
    PURPOSE_STORY_CONTINUATION: _ClassVar[Purpose]
    PURPOSE_STORY_ENDING: _ClassVar[Purpose]
    PURPOSE_STORY_SUGGESTIONS: _ClassVar[Purpose]
    PURPOSE_JOB_STAGE: _ClassVar[Purpose]
    PURPOSE_COUNCIL_STAGE_1: _ClassVar[Purpose]
    PURPOSE_COUNCIL_STAGE_2: _ClassVar[Purpose]
    PURPOSE_COUNCIL_STAGE_3: _ClassVar[Purpose]
    PURPOSE_COUNCIL_MESSAGE: _ClassVar[Purpose]
    PURPOSE_COUNCIL_CLARIFY: _ClassVar[Purpose]
    PURPOSE_PICTURE_STORY: _ClassVar[Purpose]

class GenerationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GENERATION_KIND_UNSPECIFIED: _ClassVar[GenerationKind]
    GENERATION_KIND_OPENING: _ClassVar[GenerationKind]
    GENERATION_KIND_CONTINUATION: _ClassVar[GenerationKind]
    GENERATION_KIND_ENDING: _ClassVar[GenerationKind]

class Delivery(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_UNSPECIFIED: _ClassVar[Delivery]
    DELIVERY_ON_COMPLETION: _ClassVar[Delivery]
    DELIVERY_CONFIRMED_BY_OWNER: _ClassVar[Delivery]
GENERATION_STATE_UNSPECIFIED: GenerationState
GENERATION_STATE_UNKNOWN: GenerationState
GENERATION_STATE_STARTED: GenerationState
GENERATION_STATE_FINISHED: GenerationState
PURPOSE_UNSPECIFIED: Purpose
PURPOSE_STORY_OPENING: Purpose
PURPOSE_STORY_CONTINUATION: Purpose
PURPOSE_STORY_ENDING: Purpose
PURPOSE_STORY_SUGGESTIONS: Purpose
PURPOSE_JOB_STAGE: Purpose
PURPOSE_COUNCIL_STAGE_1: Purpose
PURPOSE_COUNCIL_STAGE_2: Purpose
PURPOSE_COUNCIL_STAGE_3: Purpose
PURPOSE_COUNCIL_MESSAGE: Purpose
PURPOSE_COUNCIL_CLARIFY: Purpose
PURPOSE_PICTURE_STORY: Purpose
GENERATION_KIND_UNSPECIFIED: GenerationKind
GENERATION_KIND_OPENING: GenerationKind
GENERATION_KIND_CONTINUATION: GenerationKind
GENERATION_KIND_ENDING: GenerationKind
DELIVERY_UNSPECIFIED: Delivery
DELIVERY_ON_COMPLETION: Delivery
DELIVERY_CONFIRMED_BY_OWNER: Delivery

class RenderedPrompt(_message.Message):
    __slots__ = ("messages", "prompt_tokens")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    prompt_tokens: int
    def __init__(self, messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., prompt_tokens: _Optional[int] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class SuggestStoriesRequest(_message.Message):
    __slots__ = ("user_id", "genre", "count", "locale")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    genre: str
    count: int
    locale: str
    def __init__(self, user_id: _Optional[str] = ..., genre: _Optional[str] = ..., count: _Optional[int] = ..., locale: _Optional[str] = ...) -> None: ...

class StoryIdea(_message.Message):
    __slots__ = ("title", "genre", "characters", "opening_line")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    OPENING_LINE_FIELD_NUMBER: _ClassVar[int]
    title: str
    genre: str
    characters: _containers.RepeatedScalarFieldContainer[str]
    opening_line: str
    def __init__(self, title: _Optional[str] = ..., genre: _Optional[str] = ..., characters: _Optional[_Iterable[str]] = ..., opening_line: _Optional[str] = ...) -> None: ...

class SuggestStoriesResponse(_message.Message):
    __slots__ = ("ideas", "generation_id", "provider", "model", "is_language_model", "usage")
    IDEAS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IS_LANGUAGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ideas: _containers.RepeatedCompositeFieldContainer[StoryIdea]
    generation_id: str
    provider: str
    model: str
    is_language_model: bool
    usage: Usage
    def __init__(self, ideas: _Optional[_Iterable[_Union[StoryIdea, _Mapping]]] = ..., generation_id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., is_language_model: _Optional[bool] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class LookupGenerationsRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GenerationLookup(_message.Message):
    __slots__ = ("id", "state")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: GenerationState
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[GenerationState, str]] = ...) -> None: ...

class LookupGenerationsResponse(_message.Message):
    __slots__ = ("generations",)
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    generations: _containers.RepeatedCompositeFieldContainer[GenerationLookup]
    def __init__(self, generations: _Optional[_Iterable[_Union[GenerationLookup, _Mapping]]] = ...) -> None: ...

class SubjectRef(_message.Message):
    __slots__ = ("kind", "id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    kind: str
    id: str
    def __init__(self, kind: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class StoryInputs(_message.Message):
    __slots__ = ("genre", "title", "characters", "opening_line", "previous_segments", "memory", "authors_note", "lore")
    GENRE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    OPENING_LINE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    AUTHORS_NOTE_FIELD_NUMBER: _ClassVar[int]
    LORE_FIELD_NUMBER: _ClassVar[int]
    genre: str
    title: str
    characters: _containers.RepeatedScalarFieldContainer[str]
    opening_line: str
    previous_segments: _containers.RepeatedScalarFieldContainer[str]
    memory: str
    authors_note: str
    lore: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, genre: _Optional[str] = ..., title: _Optional[str] = ..., characters: _Optional[_Iterable[str]] = ..., opening_line: _Optional[str] = ..., previous_segments: _Optional[_Iterable[str]] = ..., memory: _Optional[str] = ..., authors_note: _Optional[str] = ..., lore: _Optional[_Iterable[str]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("user_id", "purpose", "subject", "story_id", "reservation_id", "kind", "story", "generation_id", "delivery", "direction", "want_title")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    STORY_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STORY_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    WANT_TITLE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    purpose: Purpose
    subject: SubjectRef
    story_id: str
    reservation_id: str
    kind: GenerationKind
    story: StoryInputs
    generation_id: str
    delivery: Delivery
    direction: str
    want_title: bool
    def __init__(self, user_id: _Optional[str] = ..., purpose: _Optional[_Union[Purpose, str]] = ..., subject: _Optional[_Union[SubjectRef, _Mapping]] = ..., story_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., kind: _Optional[_Union[GenerationKind, str]] = ..., story: _Optional[_Union[StoryInputs, _Mapping]] = ..., generation_id: _Optional[str] = ..., delivery: _Optional[_Union[Delivery, str]] = ..., direction: _Optional[str] = ..., want_title: _Optional[bool] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "estimated", "cost", "cost_usd")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    cost: _money_pb2.Money
    cost_usd: str
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., estimated: _Optional[bool] = ..., cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., cost_usd: _Optional[str] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("generation_id", "text", "title", "provider", "model", "usage", "is_language_model")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    IS_LANGUAGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    generation_id: str
    text: str
    title: str
    provider: str
    model: str
    usage: Usage
    is_language_model: bool
    def __init__(self, generation_id: _Optional[str] = ..., text: _Optional[str] = ..., title: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., is_language_model: _Optional[bool] = ...) -> None: ...

class TextDelta(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class GenerateStreamEvent(_message.Message):
    __slots__ = ("token", "done")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    token: TextDelta
    done: GenerateResponse
    def __init__(self, token: _Optional[_Union[TextDelta, _Mapping]] = ..., done: _Optional[_Union[GenerateResponse, _Mapping]] = ...) -> None: ...
