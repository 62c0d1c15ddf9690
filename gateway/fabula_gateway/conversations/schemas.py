"""Council conversations: request bodies (with their limits) and responses."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fabula_gateway.schemas import NoNul, RequestBody

Title = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), NoNul]
Content = Annotated[str, StringConstraints(min_length=1, max_length=8_000), NoNul]
Answer = Annotated[str, StringConstraints(max_length=8_000), NoNul]


class ConversationCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "The lighthouse case"}]})

    title: Title = Field("", description="Generated from the first question when left empty.")


class ConversationUpdate(RequestBody):
    """Changes the fields sent; the others stay."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"starred": True}]})

    title: Title | None = None
    starred: bool | None = None


class MessageCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"content": "Who did it?"}]})

    content: Content = Field(description="The question for the council.")


class FollowUpAnswers(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"answers": ["Point Reyes", "1923"]}]}
    )

    answers: list[Answer] = Field(
        min_length=1,
        max_length=3,
        description="One answer per pending question, in their order.",
    )


class StageUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    cost_usd: str = Field(description="In US dollars, a decimal string.")
    duration_ms: int


class MemberAnswer(BaseModel):
    model: str = Field(description='The member\'s model, "provider/model".')
    text: str
    error: str | None = Field(None, description="The provider's error when the member failed.")
    usage: StageUsage | None = None


class MemberReview(BaseModel):
    model: str
    text: str
    label_to_model: dict[str, str] = Field(
        description="The anonymous labels this reviewer saw, and whose answers they were."
    )
    ranking: list[str] = Field(description="Its ranking as labels, best first.")
    ranking_parsed: bool = Field(description="False when its ranking could not be read.")
    error: str | None = None
    usage: StageUsage | None = None


class RankedMember(BaseModel):
    model: str
    average_rank: float = Field(description="Mean position over the reviews (self-votes left out).")
    votes: int


class ChairmanAnswer(BaseModel):
    model: str
    text: str
    fell_back_from: str | None = Field(
        None, description="The configured chairman, when it failed and this model stood in."
    )
    usage: StageUsage | None = None


class FollowUp(BaseModel):
    question: str
    answer: str


class CouncilRecord(BaseModel):
    answers: list[MemberAnswer] = Field(description="Stage 1: each member's answer.")
    reviews: list[MemberReview] = Field(description="Stage 2: each member's review and ranking.")
    aggregate: list[RankedMember] = Field(description="The aggregate ranking, best first.")
    chairman: ChairmanAnswer | None = Field(None, description="Stage 3: the final answer.")
    failed_members: list[str]
    usage: StageUsage | None = Field(None, description="Totals of every model call.")
    follow_ups: list[FollowUp]


class Message(BaseModel):
    id: str
    role: Literal["user", "assistant"]
    content: str = Field(description="The question, or the chairman's final answer.")
    council: CouncilRecord | None = Field(None, description="Assistant messages: every stage.")
    status: Literal["answering", "complete", "failed", "interrupted"] | None = Field(
        None,
        description="Assistant messages: `interrupted` when the service stopped midway "
        "(`POST …/messages/{message_id}/resume` goes on from the stages stored).",
    )
    created_at: dt.datetime


class ConversationSummary(BaseModel):
    id: str
    title: str
    starred: bool
    message_count: int
    pending_questions: list[str] = Field(
        description="Clarifying questions waiting for `/follow-up`; empty when none."
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class Conversation(ConversationSummary):
    messages: list[Message] = Field(description="Oldest first.")


class ConversationPage(BaseModel):
    items: list[ConversationSummary]
    next_cursor: str | None


class ClarifyingQuestions(BaseModel):
    questions: list[str] = Field(
        description="What the chairman asks before deliberating: answer at `/follow-up`."
    )
