"""gRPC edge of fabula.generation.v1.CouncilService: validation, proto <->
domain, the council's size for the user's plan."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import grpc
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.generation.v1 import council_pb2, council_pb2_grpc
from fabula_common.context import is_child_safe
from fabula_common.errors import FabulaError, InvalidArgument, Unavailable, from_rpc_error

from fabula_generation.council import prompts
from fabula_generation.council.engine import (
    MODEL_UNAVAILABLE,
    SUBJECT_KIND,
    CouncilEngine,
    Deliberation,
    Member,
)
from fabula_generation.generations.domain import (
    GenerationRequest,
    Purpose,
    StoryInputs,
    Subject,
)
from fabula_generation.generations.service import GenerationCall, complete_generation
from fabula_generation.safety.moderation import require_suitable

MAX_ID_LENGTH = 64
MAX_QUESTION_CHARS = 8_000
MAX_HISTORY_TURNS = 50
MAX_TURN_CHARS = 20_000
MAX_FOLLOW_UPS = prompts.MAX_FOLLOW_UP_QUESTIONS
MAX_FOLLOW_UP_CHARS = 2_000


def _require_id(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidArgument(f"{field} is required")
    if len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise InvalidArgument(f"{field} must be at most {MAX_ID_LENGTH} characters")
    return value


def _question(value: str) -> str:
    if not value.strip():
        raise InvalidArgument("question is required")
    if len(value) > MAX_QUESTION_CHARS:
        raise InvalidArgument(f"question must be at most {MAX_QUESTION_CHARS} characters")
    return value


def conversation_from_proto(
    history: Sequence[council_pb2.ConversationTurn],
    follow_ups: Sequence[council_pb2.FollowUpAnswer] = (),
) -> prompts.Conversation:
    """Earlier turns as exchanges (a question and the council's answer to it)."""
    if len(history) > MAX_HISTORY_TURNS:
        raise InvalidArgument(f"history may hold at most {MAX_HISTORY_TURNS} turns")
    exchanges: list[prompts.Exchange] = []
    question: str | None = None
    for turn in history:
        if turn.role not in ("user", "assistant"):
            raise InvalidArgument('each history turn\'s role must be "user" or "assistant"')
        if len(turn.content) > MAX_TURN_CHARS:
            raise InvalidArgument(f"each history turn must be at most {MAX_TURN_CHARS} characters")
        if turn.role == "user":
            if question is not None:
                exchanges.append(prompts.Exchange(question, ""))
            question = turn.content
        else:
            exchanges.append(prompts.Exchange(question or "", turn.content))
            question = None
    if question is not None:
        exchanges.append(prompts.Exchange(question, ""))
    if len(follow_ups) > MAX_FOLLOW_UPS:
        raise InvalidArgument(f"follow_ups may hold at most {MAX_FOLLOW_UPS} answers")
    for follow_up in follow_ups:
        if len(follow_up.question) > MAX_FOLLOW_UP_CHARS or len(follow_up.answer) > (
            MAX_FOLLOW_UP_CHARS
        ):
            raise InvalidArgument(
                f"each follow-up question and answer must be at most {MAX_FOLLOW_UP_CHARS} "
                "characters"
            )
    return prompts.Conversation(
        history=tuple(exchanges),
        follow_ups=tuple(prompts.FollowUpAnswer(f.question, f.answer) for f in follow_ups),
    )


def deliberation_from_proto(request: council_pb2.DeliberateRequest) -> Deliberation:
    try:
        message_id = str(uuid.UUID(request.message_id))
    except ValueError:
        raise InvalidArgument("message_id must be a UUID") from None
    if request.council_size < 0:
        raise InvalidArgument("council_size must not be negative")
    return Deliberation(
        user_id=_require_id(request.user_id, "user_id"),
        message_id=message_id,
        conversation_id=_require_id(request.conversation_id, "conversation_id"),
        question=_question(request.question),
        conversation=conversation_from_proto(request.history, request.follow_ups),
        council_size=request.council_size,
        want_title=request.want_title,
        done_answers=tuple(request.done_answers),
        done_reviews=tuple(request.done_reviews),
    )


class CouncilServicer(council_pb2_grpc.CouncilServiceServicer):
    def __init__(
        self, engine: CouncilEngine, billing: billing_pb2_grpc.BillingServiceStub
    ) -> None:
        self.engine = engine
        self.billing = billing

    async def _members(self, user_id: str, requested: int) -> list[Member]:
        """The members for this message: as many as the user's plan allows
        (billing's GetUsage names it), fewer when the caller asks for fewer."""
        try:
            usage = await self.billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from err
        size = self.engine.council.size_for_plan(usage.plan)
        if requested > 0:
            size = min(size, requested) if size > 0 else requested
        return self.engine.council.members(size)

    async def Deliberate(
        self, request: council_pb2.DeliberateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[council_pb2.CouncilEvent]:
        deliberation = deliberation_from_proto(request)
        members = await self._members(deliberation.user_id, deliberation.council_size)
        async for event in self.engine.deliberate(deliberation, members):
            yield event

    async def ClarifyingQuestions(
        self, request: council_pb2.ClarifyingQuestionsRequest, context: grpc.aio.ServicerContext
    ) -> council_pb2.ClarifyingQuestionsResponse:
        """The chairman's clarifying questions (metered as cost, nothing
        reserved); the first chairman that answers is asked."""
        user_id = _require_id(request.user_id, "user_id")
        conversation_id = _require_id(request.conversation_id, "conversation_id")
        question = _question(request.question)
        conversation = conversation_from_proto(request.history)
        if request.max_questions < 0:
            raise InvalidArgument("max_questions must not be negative")
        limit = min(
            request.max_questions or self.engine.council.follow_up_questions,
            prompts.MAX_FOLLOW_UP_QUESTIONS,
        )
        if limit == 0:
            return council_pb2.ClarifyingQuestionsResponse()
        child_safe = is_child_safe()
        if child_safe:
            await require_suitable(self.engine.moderator, {"question": question})
        prompt = prompts.follow_up_prompt(question, conversation, limit)
        errors: list[str] = []
        for chairman in self.engine.council.chairmen():
            call = GenerationCall(
                GenerationRequest(
                    user_id=user_id,
                    purpose=Purpose.council_clarify,
                    subject=Subject(SUBJECT_KIND, conversation_id),
                    story=StoryInputs(),
                    prompt=prompt,
                ),
                chairman.provider,
                reservation_id="",
                attributes={
                    "conversation_id": conversation_id,
                    "stage": "0",
                    "member": chairman.name,
                },
            )
            await self.engine.recorder.start(call)
            try:
                async with self.engine.recorder.recording(call):
                    await complete_generation(call)
            except FabulaError as exc:  # the next chairman is asked
                errors.append(f"{chairman.name}: {exc.message}")
                continue
            questions = prompts.parse_follow_up_questions(call.text, limit)
            if child_safe:
                await require_suitable(self.engine.moderator, {"questions": "\n".join(questions)})
            return council_pb2.ClarifyingQuestionsResponse(questions=questions)
        raise Unavailable(
            "no chairman could be asked: " + "; ".join(errors), reason=MODEL_UNAVAILABLE
        )

