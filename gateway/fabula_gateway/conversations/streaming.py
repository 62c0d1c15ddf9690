"""A council message as JSON or as Server-Sent Events (the plumbing is
fabula_gateway.streaming's): the first event (the stored question) is awaited
before the HTTP response starts, so a refusal (unknown conversation, busy,
bad input, service down) is an ordinary problem response; later errors
travel as `event: error`.

A council may run for up to COUNCIL_DEADLINE_SECONDS, longer than one model
call's GENERATION_DEADLINE_SECONDS: the call to stories has the council's
deadline, and an event stream also gives up when nothing at all comes for
GENERATION_DEADLINE_SECONDS (a live council streams its text as written)."""

from __future__ import annotations

from fabula.stories.v1 import conversations_pb2

from fabula_gateway.conversations.mappers import council_event_data, message_from_proto
from fabula_gateway.conversations.schemas import ClarifyingQuestions, Message
from fabula_gateway.problems import SERVICE_UNAVAILABLE, ProblemError, retry_after
from fabula_gateway.streaming import GrpcEventStream, sse_json

ConversationEvent = conversations_pb2.ConversationEvent


class CouncilStream(GrpcEventStream[ConversationEvent]):
    """A started SendMessage, AnswerFollowUp or ResumeMessage call whose first
    event has arrived."""

    ended_without_result = "The stories service ended without the council's answer."
    cut_by_shutdown = (
        "The gateway is shutting down; the council's answer is stored regardless: "
        "fetch the conversation."
    )

    async def collect(self) -> Message | ClarifyingQuestions:  # type: ignore[override]
        """The stored answer (or the chairman's questions): the JSON answer."""
        return await super().collect(_result)

    def ends(self, event: ConversationEvent) -> bool:
        """The last event of a message: the answer, or the chairman's questions."""
        return event.HasField("questions") or (
            event.HasField("message") and event.message.role == "assistant"
        )

    def sse(self, event: ConversationEvent) -> list[bytes]:
        which = event.WhichOneof("event")
        if which == "message":
            return [sse_json("message", message_from_proto(event.message).model_dump(mode="json"))]
        if which == "questions":
            return [sse_json("questions", {"questions": list(event.questions.questions)})]
        if which == "council":
            data = council_event_data(event.council)
            return [sse_json(*data)] if data is not None else []
        return []

    def idle_problem(self) -> ProblemError:
        return ProblemError(
            SERVICE_UNAVAILABLE,
            f"The council sent nothing for {self._idle_seconds:g} seconds; its answer is "
            "stored if it comes: fetch the conversation (an interrupted answer can be resumed).",
            headers=retry_after(None),
        )


def _result(event: ConversationEvent) -> Message | ClarifyingQuestions | None:
    if event.HasField("questions"):
        return ClarifyingQuestions(questions=list(event.questions.questions))
    if event.HasField("message") and event.message.role == "assistant":
        return message_from_proto(event.message)
    return None
