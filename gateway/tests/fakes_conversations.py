"""A fake of stories' ConversationsService for the gateway's tests: canned
answers derived from the request, every call recorded (fakes.Recorder). One
conversation (CONVERSATION_ID) exists for whoever asks; a message streams a
scripted council."""

from __future__ import annotations

import grpc
from fabula.common.v1.money_pb2 import Money
from fabula.generation.v1 import council_pb2
from fabula.stories.v1 import conversations_pb2, conversations_pb2_grpc
from google.protobuf import empty_pb2

CONVERSATION_ID = "3f2e1d0c-9b8a-4765-a432-10fedcba9876"
QUESTION_ID = "1a2b3c4d-5e6f-4a0b-8c1d-2e3f4a5b6c7d"
ANSWER_ID = "7d6c5b4a-3f2e-4d1c-8b0a-9f8e7d6c5b4a"
CHAIRMAN_TEXT = "The keeper did it."


def _timestamp():
    from .fakes import CREATED_AT, timestamp

    return timestamp(CREATED_AT)


def usage() -> council_pb2.StageUsage:
    return council_pb2.StageUsage(
        prompt_tokens=12,
        completion_tokens=30,
        cost=Money(currency_code="USD", units=0, nanos=2_500_000),
        duration_ms=40,
    )


def record(follow_ups=()) -> conversations_pb2.CouncilRecord:
    return conversations_pb2.CouncilRecord(
        answers=[
            council_pb2.MemberAnswer(model="offline/alpha", text="It was the keeper.", usage=usage()),
            council_pb2.MemberAnswer(model="offline/beta", error="429 rate limited"),
        ],
        reviews=[
            council_pb2.MemberReview(
                model="offline/alpha",
                text="FINAL RANKING:\n1. Response A",
                label_to_model={"Response A": "offline/alpha"},
                ranking=["Response A"],
                ranking_parsed=True,
                usage=usage(),
            )
        ],
        aggregate=council_pb2.AggregateRanking(
            members=[council_pb2.RankedMember(model="offline/alpha", average_rank=1.0, votes=1)]
        ),
        chairman=council_pb2.ChairmanAnswer(model="offline/alpha", text=CHAIRMAN_TEXT, usage=usage()),
        failed_members=["offline/beta"],
        usage=usage(),
        follow_ups=list(follow_ups),
    )


def question(content: str) -> conversations_pb2.Message:
    return conversations_pb2.Message(
        id=QUESTION_ID, role="user", content=content, created_at=_timestamp()
    )


def answer(follow_ups=()) -> conversations_pb2.Message:
    return conversations_pb2.Message(
        id=ANSWER_ID,
        role="assistant",
        content=CHAIRMAN_TEXT,
        council=record(follow_ups),
        created_at=_timestamp(),
    )


def conversation(user_id: str, **fields) -> conversations_pb2.Conversation:
    values = {
        "id": CONVERSATION_ID,
        "user_id": user_id,
        "title": "The lighthouse case",
        "starred": False,
        "message_count": 2,
        "created_at": _timestamp(),
        "updated_at": _timestamp(),
        **fields,
    }
    return conversations_pb2.Conversation(**values)


def council_events(content: str, follow_ups=()) -> list[conversations_pb2.ConversationEvent]:
    event = conversations_pb2.ConversationEvent
    council = council_pb2.CouncilEvent
    return [
        event(message=question(content)),
        event(council=council(stage_started=1)),
        event(council=council(delta=council_pb2.CouncilDelta(stage=1, model="offline/alpha", text="It was "))),
        event(council=council(answer=record().answers[0])),
        event(council=council(answer=record().answers[1])),
        event(council=council(stage_started=2)),
        event(council=council(review=record().reviews[0])),
        event(council=council(aggregate=record().aggregate)),
        event(council=council(stage_started=3)),
        event(council=council(chairman=record().chairman)),
        event(council=council(title="The lighthouse case")),
        event(council=council(done=council_pb2.CouncilDone(usage=usage()))),
        event(message=answer(follow_ups)),
    ]


class FakeConversations(conversations_pb2_grpc.ConversationsServiceServicer):
    def __init__(self, recorder) -> None:
        self.recorder = recorder
        # Set: SendMessage answers with these clarifying questions instead.
        self.questions: list[str] = []
        # Set (a fakes.Failure): SendMessage ends with it after the question.
        self.fail_after_question = None
        # True: SendMessage goes silent after the question (a stuck council).
        self.silent_after_question = False

    async def CreateConversation(self, request, context):
        await self.recorder.receive("CreateConversation", request, context)
        return conversation(request.user_id, title=request.title, message_count=0)

    async def ListConversations(self, request, context):
        await self.recorder.receive("ListConversations", request, context)
        return conversations_pb2.ListConversationsResponse(
            items=[conversation(request.user_id, starred=request.starred)],
            next_cursor="next-page",
        )

    async def ExportConversations(self, request, context):
        await self.recorder.receive("ExportConversations", request, context)
        yield conversation(request.user_id, messages=[question("Who did it?"), answer()])

    async def GetConversation(self, request, context):
        await self.recorder.receive("GetConversation", request, context)
        return conversation(
            request.user_id, messages=[question("Who did it?"), answer()]
        )

    async def UpdateConversation(self, request, context):
        await self.recorder.receive("UpdateConversation", request, context)
        fields = {}
        if request.HasField("title"):
            fields["title"] = request.title
        if request.HasField("starred"):
            fields["starred"] = request.starred
        return conversation(request.user_id, **fields)

    async def DeleteConversation(self, request, context):
        await self.recorder.receive("DeleteConversation", request, context)
        return empty_pb2.Empty()

    async def SendMessage(self, request, context):
        await self.recorder.receive("SendMessage", request, context)
        if self.questions:
            yield conversations_pb2.ConversationEvent(message=question(request.content))
            yield conversations_pb2.ConversationEvent(
                questions=conversations_pb2.ClarifyingQuestions(questions=self.questions)
            )
            return
        if self.fail_after_question is not None:
            from .fakes import abort_with

            yield council_events(request.content)[0]
            failure = self.fail_after_question
            await abort_with(context, failure.code, failure.details, failure.reason)
        if self.silent_after_question:
            import asyncio

            yield council_events(request.content)[0]
            await asyncio.Event().wait()  # until the caller gives up
        for event in council_events(request.content):
            yield event

    async def AnswerFollowUp(self, request, context):
        await self.recorder.receive("AnswerFollowUp", request, context)
        follow_ups = [
            council_pb2.FollowUpAnswer(question=f"Question {i + 1}?", answer=a)
            for i, a in enumerate(request.answers)
        ]
        for event in council_events("Who did it?", follow_ups):
            yield event

    async def ResumeMessage(self, request, context):
        await self.recorder.receive("ResumeMessage", request, context)
        if request.message_id != ANSWER_ID:
            from .fakes import abort_with

            await abort_with(context, grpc.StatusCode.NOT_FOUND, "message not found", "")
        # Stages 1 and 2 were stored before the interruption: only stage 3 comes.
        events = council_events("Who did it?")
        for event in [events[0], *events[8:]]:
            yield event
