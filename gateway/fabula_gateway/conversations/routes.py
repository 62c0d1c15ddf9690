"""Council conversations (stories' ConversationsService): keep conversations,
ask the council, answer its clarifying questions."""

from __future__ import annotations

from typing import Annotated

from fabula.stories.v1 import conversations_pb2
from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from starlette.responses import JSONResponse, StreamingResponse

from fabula_gateway.conversations.mappers import conversation_from_proto, summary_from_proto
from fabula_gateway.conversations.schemas import (
    ClarifyingQuestions,
    Conversation,
    ConversationCreate,
    ConversationPage,
    ConversationUpdate,
    FollowUpAnswers,
    Message,
    MessageCreate,
)
from fabula_gateway.conversations.streaming import CouncilStream
from fabula_gateway.dependencies import Clients, CurrentUserId, JsonBody
from fabula_gateway.openapi import problem_responses
from fabula_gateway.problems import VALIDATION_FAILED, FieldError, ProblemError
from fabula_gateway.projects.routes import Cursor, Limit, parse_uuid
from fabula_gateway.streaming import EVENT_STREAM, wants_event_stream

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])

_S409 = (
    "The council is answering another message of this conversation (type "
    "`conversation-busy`): retry after `Retry-After` seconds."
)
_SSE_EXAMPLE = (
    'event: message\ndata: {"id": "…", "role": "user", "content": "Who did it?", …}\n\n'
    'event: stage_started\ndata: {"stage": 1}\n\n'
    'event: delta\ndata: {"stage": 1, "model": "offline/alpha", "text": "It was "}\n\n'
    'event: answer\ndata: {"model": "offline/alpha", "text": "It was the keeper.", …}\n\n'
    'event: stage_started\ndata: {"stage": 2}\n\n'
    'event: review\ndata: {"model": "offline/beta", "ranking": ["Response A", …], …}\n\n'
    'event: aggregate\ndata: {"members": [{"model": "offline/alpha", "average_rank": 1.0, …}]}\n\n'
    'event: stage_started\ndata: {"stage": 3}\n\n'
    'event: chairman\ndata: {"model": "offline/alpha", "text": "The keeper did it.", …}\n\n'
    'event: title\ndata: {"title": "The lighthouse case"}\n\n'
    'event: message\ndata: {"id": "…", "role": "assistant", "council": {…}, …}\n\n'
)
_ASKING = (
    "As JSON the answer comes when every stage is done: 201 with the stored assistant "
    "message (every stage, rankings, the label → model map, usage per stage); or, when the "
    "chairman first asks clarifying questions, 200 with them (answer at `/follow-up`).\n\n"
    "With `Accept: text/event-stream` the answer is 200 with Server-Sent Events as the "
    "council works: `message` (the stored question), `stage_started` {stage}, `delta` "
    "{stage, model, text} as text is written, `answer` per member (stage 1), `review` per "
    "member and `aggregate` (stage 2), `chairman` (stage 3), `title` (when generated), then "
    "`message` (the stored answer); or `questions` instead of the stages; or `error` (a "
    "problem document). A client that disconnects does not stop the council: the answer "
    "is stored (and counted once) anyway.\n\n"
    "Uses one generation of the plan's quota; every model call counts toward cost."
)


def _stream_responses() -> dict:
    return {
        200: {
            "description": "Clarifying questions (JSON), or the council at work (Server-Sent "
            "Events).",
            "content": {
                "application/json": {"schema": ClarifyingQuestions.model_json_schema()},
                EVENT_STREAM: {"schema": {"type": "string"}, "example": _SSE_EXAMPLE},
            },
        },
        **problem_responses(401, 402, 404, 409, 413, 415, 422, 500, 503, s409=_S409),
    }


async def _conversation_id(
    conversation_id: Annotated[str, Path(description="The conversation's id (a UUID).")],
) -> str:
    return parse_uuid(conversation_id, "Conversation")


ConversationId = Annotated[str, Depends(_conversation_id)]


def _location(conversation_id: str) -> str:
    return f"/v1/conversations/{conversation_id}"


@router.post(
    "",
    operation_id="create_conversation",
    status_code=status.HTTP_201_CREATED,
    response_model=Conversation,
    response_description="The new conversation; its URL is in Location.",
    summary="Create a conversation",
    description="An empty conversation with the council; without a title, one is generated "
    "from its first question.",
    responses=problem_responses(401, 413, 415, 422, 500, 503),
)
async def create_conversation(
    body: ConversationCreate,
    _json: JsonBody,
    user_id: CurrentUserId,
    clients: Clients,
    response: Response,
) -> Conversation:
    conversation = await clients.conversations.CreateConversation(
        conversations_pb2.CreateConversationRequest(user_id=user_id, title=body.title)
    )
    response.headers["Location"] = _location(conversation.id)
    return conversation_from_proto(conversation)


@router.get(
    "",
    operation_id="list_conversations",
    response_model=ConversationPage,
    summary="List conversations",
    description="Newest first, a page at a time, without their messages; `starred=true` "
    "for the starred ones only (`false`: the others).",
    responses=problem_responses(401, 422, 500, 503),
)
async def list_conversations(
    user_id: CurrentUserId,
    clients: Clients,
    starred: Annotated[bool | None, Query(description="Only starred (or unstarred) ones.")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> ConversationPage:
    message = conversations_pb2.ListConversationsRequest(
        user_id=user_id, limit=limit, cursor=cursor or ""
    )
    if starred is not None:
        message.starred = starred
    page = await clients.conversations.ListConversations(message)
    return ConversationPage(
        items=[summary_from_proto(item) for item in page.items],
        next_cursor=page.next_cursor or None,
    )


@router.get(
    "/{conversation_id}",
    operation_id="get_conversation",
    response_model=Conversation,
    summary="Get a conversation",
    description="With its messages, oldest first; each answer with every stage of the council.",
    responses=problem_responses(401, 404, 500, 503),
)
async def get_conversation(
    user_id: CurrentUserId, conversation_id: ConversationId, clients: Clients
) -> Conversation:
    return conversation_from_proto(
        await clients.conversations.GetConversation(
            conversations_pb2.ConversationRef(user_id=user_id, conversation_id=conversation_id)
        )
    )


@router.patch(
    "/{conversation_id}",
    operation_id="update_conversation",
    response_model=Conversation,
    summary="Rename or star a conversation",
    description="Changes the fields sent (`title`, `starred`); the others stay.",
    responses=problem_responses(401, 404, 413, 415, 422, 500, 503),
)
async def update_conversation(
    body: ConversationUpdate,
    _json: JsonBody,
    user_id: CurrentUserId,
    conversation_id: ConversationId,
    clients: Clients,
) -> Conversation:
    sent = body.model_fields_set
    for name in ("title", "starred"):
        if name in sent and getattr(body, name) is None:
            raise ProblemError(
                VALIDATION_FAILED,
                errors=[FieldError(pointer=f"#/{name}", detail=f"{name} cannot be null", code="null")],
            )
    message = conversations_pb2.UpdateConversationRequest(
        user_id=user_id, conversation_id=conversation_id
    )
    if body.title is not None:
        message.title = body.title
    if body.starred is not None:
        message.starred = body.starred
    return conversation_from_proto(await clients.conversations.UpdateConversation(message))


@router.delete(
    "/{conversation_id}",
    operation_id="delete_conversation",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a conversation",
    description="With all its messages.",
    responses=problem_responses(401, 404, 500, 503),
)
async def delete_conversation(
    user_id: CurrentUserId, conversation_id: ConversationId, clients: Clients
) -> Response:
    await clients.conversations.DeleteConversation(
        conversations_pb2.ConversationRef(user_id=user_id, conversation_id=conversation_id)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _council_stream(call, clients) -> CouncilStream:
    # A council may take longer than one model call (the call has the
    # council's deadline), but never goes silent for that long.
    return await CouncilStream.start(call, idle_seconds=clients.generation_timeout)


async def _answer(
    stream: CouncilStream, request: Request
) -> Message | StreamingResponse | JSONResponse:
    if wants_event_stream(request.headers.get("accept")):
        return stream.response(request.app.state.streams_must_end)
    result = await stream.collect()
    if isinstance(result, ClarifyingQuestions):
        return JSONResponse(result.model_dump(mode="json"), status_code=status.HTTP_200_OK)
    return result


@router.post(
    "/{conversation_id}/messages",
    operation_id="send_message",
    status_code=status.HTTP_201_CREATED,
    response_model=Message,
    response_description="The stored answer, with every stage (when JSON is asked for).",
    summary="Ask the council",
    description=_ASKING,
    responses=_stream_responses(),
)
async def send_message(
    # Authentication first: an anonymous caller learns nothing, not even 404.
    user_id: CurrentUserId,
    conversation_id: ConversationId,
    body: MessageCreate,
    _json: JsonBody,
    clients: Clients,
    request: Request,
) -> Message | StreamingResponse | JSONResponse:
    call = clients.conversations.SendMessage(
        conversations_pb2.SendMessageRequest(
            user_id=user_id, conversation_id=conversation_id, content=body.content
        ),
        timeout=clients.council_timeout,
    )
    return await _answer(await _council_stream(call, clients), request)


@router.post(
    "/{conversation_id}/follow-up",
    operation_id="answer_follow_up",
    status_code=status.HTTP_201_CREATED,
    response_model=Message,
    response_description="The stored answer, with every stage (when JSON is asked for).",
    summary="Answer the chairman's clarifying questions",
    description="One answer per pending question, in order (422 otherwise; 409 when none "
    "is pending); the council then deliberates with them. Answers as `/messages` does.",
    responses=_stream_responses(),
)
async def answer_follow_up(
    user_id: CurrentUserId,
    conversation_id: ConversationId,
    body: FollowUpAnswers,
    _json: JsonBody,
    clients: Clients,
    request: Request,
) -> Message | StreamingResponse | JSONResponse:
    call = clients.conversations.AnswerFollowUp(
        conversations_pb2.AnswerFollowUpRequest(
            user_id=user_id, conversation_id=conversation_id, answers=body.answers
        ),
        timeout=clients.council_timeout,
    )
    return await _answer(await _council_stream(call, clients), request)


@router.post(
    "/{conversation_id}/messages/{message_id}/resume",
    operation_id="resume_message",
    status_code=status.HTTP_201_CREATED,
    response_model=Message,
    response_description="The stored answer, with every stage (when JSON is asked for).",
    summary="Resume an interrupted answer",
    description="Goes on with an answer whose `status` is `interrupted` (the service stopped "
    "midway): the stages it stored are kept, the members that answered are not asked again, "
    "and the message still counts as one generation. Answers as `/messages` does. 409 "
    "(`conflict`) when the answer is complete or failed, 409 (`conversation-busy`) while it "
    "is still being answered; asking a new question instead gives the interrupted answer up.",
    responses=_stream_responses(),
)
async def resume_message(
    user_id: CurrentUserId,
    conversation_id: ConversationId,
    message_id: Annotated[str, Path(description="The interrupted assistant message's id.")],
    clients: Clients,
    request: Request,
) -> Message | StreamingResponse | JSONResponse:
    call = clients.conversations.ResumeMessage(
        conversations_pb2.ResumeMessageRequest(
            user_id=user_id,
            conversation_id=conversation_id,
            message_id=parse_uuid(message_id, "Message"),
        ),
        timeout=clients.council_timeout,
    )
    return await _answer(await _council_stream(call, clients), request)
