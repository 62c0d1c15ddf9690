"""ConversationsService and CouncilService messages as the API's schemas."""

from __future__ import annotations

from fabula.generation.v1 import council_pb2
from fabula.stories.v1 import conversations_pb2

from fabula_gateway.conversations.schemas import (
    ChairmanAnswer,
    Conversation,
    ConversationSummary,
    CouncilRecord,
    FollowUp,
    MemberAnswer,
    MemberReview,
    Message,
    RankedMember,
    StageUsage,
)
from fabula_gateway.mappers import to_datetime
from fabula_gateway.projects.mappers import usd


def usage_from_proto(usage: council_pb2.StageUsage) -> StageUsage:
    return StageUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usd(usage.cost, "cost"),
        duration_ms=usage.duration_ms,
    )


def _usage(message, field: str = "usage") -> StageUsage | None:
    return usage_from_proto(getattr(message, field)) if message.HasField(field) else None


def answer_from_proto(answer: council_pb2.MemberAnswer) -> MemberAnswer:
    return MemberAnswer(
        model=answer.model, text=answer.text, error=answer.error or None, usage=_usage(answer)
    )


def review_from_proto(review: council_pb2.MemberReview) -> MemberReview:
    return MemberReview(
        model=review.model,
        text=review.text,
        label_to_model=dict(review.label_to_model),
        ranking=list(review.ranking),
        ranking_parsed=review.ranking_parsed,
        error=review.error or None,
        usage=_usage(review),
    )


def aggregate_from_proto(aggregate: council_pb2.AggregateRanking) -> list[RankedMember]:
    return [
        RankedMember(model=m.model, average_rank=m.average_rank, votes=m.votes)
        for m in aggregate.members
    ]


def chairman_from_proto(chairman: council_pb2.ChairmanAnswer) -> ChairmanAnswer:
    return ChairmanAnswer(
        model=chairman.model,
        text=chairman.text,
        fell_back_from=chairman.fell_back_from or None,
        usage=_usage(chairman),
    )


def record_from_proto(record: conversations_pb2.CouncilRecord) -> CouncilRecord:
    return CouncilRecord(
        answers=[answer_from_proto(a) for a in record.answers],
        reviews=[review_from_proto(r) for r in record.reviews],
        aggregate=aggregate_from_proto(record.aggregate),
        chairman=chairman_from_proto(record.chairman) if record.HasField("chairman") else None,
        failed_members=list(record.failed_members),
        usage=_usage(record),
        follow_ups=[FollowUp(question=f.question, answer=f.answer) for f in record.follow_ups],
    )


def message_from_proto(message: conversations_pb2.Message) -> Message:
    return Message(
        id=message.id,
        role=message.role,
        content=message.content,
        council=record_from_proto(message.council) if message.HasField("council") else None,
        status=message.status or None,
        created_at=to_datetime(message.created_at),
    )


def _summary_fields(conversation: conversations_pb2.Conversation) -> dict:
    return {
        "id": conversation.id,
        "title": conversation.title,
        "starred": conversation.starred,
        "message_count": conversation.message_count,
        "pending_questions": list(conversation.pending_questions),
        "created_at": to_datetime(conversation.created_at),
        "updated_at": to_datetime(conversation.updated_at),
    }


def summary_from_proto(conversation: conversations_pb2.Conversation) -> ConversationSummary:
    return ConversationSummary(**_summary_fields(conversation))


def conversation_from_proto(conversation: conversations_pb2.Conversation) -> Conversation:
    return Conversation(
        **_summary_fields(conversation),
        messages=[message_from_proto(m) for m in conversation.messages],
    )


def council_event_data(event: council_pb2.CouncilEvent) -> tuple[str, dict] | None:
    """A council event as an SSE event name and its data; None for those not
    passed on (`done`: its totals are in the stored message)."""
    which = event.WhichOneof("event")
    if which == "stage_started":
        return "stage_started", {"stage": event.stage_started}
    if which == "delta":
        delta = event.delta
        return "delta", {"stage": delta.stage, "model": delta.model, "text": delta.text}
    if which == "answer":
        return "answer", answer_from_proto(event.answer).model_dump(mode="json")
    if which == "review":
        return "review", review_from_proto(event.review).model_dump(mode="json")
    if which == "aggregate":
        members = aggregate_from_proto(event.aggregate)
        return "aggregate", {"members": [m.model_dump(mode="json") for m in members]}
    if which == "chairman":
        return "chairman", chairman_from_proto(event.chairman).model_dump(mode="json")
    if which == "title":
        return "title", {"title": event.title}
    return None
