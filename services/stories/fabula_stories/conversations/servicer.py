"""fabula.stories.v1.ConversationsService: council conversations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from fabula.stories.v1 import conversations_pb2, conversations_pb2_grpc
from fabula_common.db import Database
from google.protobuf import empty_pb2

from fabula_stories.conversations import service
from fabula_stories.conversations.mapping import conversation_to_proto
from fabula_stories.conversations.writer import ConversationWriter
from fabula_stories.stories.service import parse_user_id


def _ref(request) -> tuple:
    return parse_user_id(request.user_id), service.parse_conversation_id(request.conversation_id)


class ConversationsServicer(conversations_pb2_grpc.ConversationsServiceServicer):
    def __init__(self, db: Database, writer: ConversationWriter, retention_days: int) -> None:
        self._db = db
        self._writer = writer
        # The free plan's (see plans.py).
        self._retention_days = retention_days

    async def CreateConversation(
        self,
        request: conversations_pb2.CreateConversationRequest,
        context: grpc.aio.ServicerContext,
    ) -> conversations_pb2.Conversation:
        user_id = parse_user_id(request.user_id)
        conversation = await service.create_conversation(self._db, user_id, request.title)
        return conversation_to_proto(conversation, messages=[])

    async def ListConversations(
        self,
        request: conversations_pb2.ListConversationsRequest,
        context: grpc.aio.ServicerContext,
    ) -> conversations_pb2.ListConversationsResponse:
        user_id = parse_user_id(request.user_id)
        starred = request.starred if request.HasField("starred") else None
        async with self._db.session_scope() as session:
            page = await service.list_conversations(
                session, user_id, request.limit, request.cursor, starred, self._retention_days
            )
            return conversations_pb2.ListConversationsResponse(
                items=[
                    conversation_to_proto(item, message_count=page.counts.get(item.id, 0))
                    for item in page.items
                ],
                next_cursor=page.next_cursor,
            )

    async def GetConversation(
        self, request: conversations_pb2.ConversationRef, context: grpc.aio.ServicerContext
    ) -> conversations_pb2.Conversation:
        user_id, conversation_id = _ref(request)
        async with self._db.session_scope() as session:
            conversation = await service.get_conversation(
                session, user_id, conversation_id, self._retention_days
            )
            return conversation_to_proto(conversation, messages=conversation.messages)

    async def ExportConversations(
        self,
        request: conversations_pb2.ExportConversationsRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[conversations_pb2.Conversation]:
        # Retention 0: nothing hidden; the user's data is all of it.
        user_id = parse_user_id(request.user_id)
        cursor = ""
        while True:
            async with self._db.session_scope() as session:
                page = await service.list_conversations(
                    session, user_id, 100, cursor, None
                )
            for item in page.items:
                async with self._db.session_scope() as session:
                    conversation = await service.get_conversation(session, user_id, item.id)
                    exported = conversation_to_proto(conversation, messages=conversation.messages)
                yield exported
            if not (cursor := page.next_cursor):
                return

    async def UpdateConversation(
        self,
        request: conversations_pb2.UpdateConversationRequest,
        context: grpc.aio.ServicerContext,
    ) -> conversations_pb2.Conversation:
        user_id, conversation_id = _ref(request)
        async with self._db.session_scope() as session:
            conversation = await service.update_conversation(
                session,
                user_id,
                conversation_id,
                request.title if request.HasField("title") else None,
                request.starred if request.HasField("starred") else None,
                self._retention_days,
            )
            return conversation_to_proto(conversation, messages=conversation.messages)

    async def DeleteConversation(
        self, request: conversations_pb2.ConversationRef, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        user_id, conversation_id = _ref(request)
        async with self._db.session_scope() as session:
            await service.delete_conversation(
                session, user_id, conversation_id, self._retention_days
            )
        return empty_pb2.Empty()

    async def SendMessage(
        self, request: conversations_pb2.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[conversations_pb2.ConversationEvent]:
        user_id, conversation_id = _ref(request)
        async for event in self._writer.send_message(user_id, conversation_id, request.content):
            yield event

    async def ResumeMessage(
        self, request: conversations_pb2.ResumeMessageRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[conversations_pb2.ConversationEvent]:
        user_id, conversation_id = _ref(request)
        message_id = service.parse_message_id(request.message_id)
        async for event in self._writer.resume_message(user_id, conversation_id, message_id):
            yield event

    async def AnswerFollowUp(
        self, request: conversations_pb2.AnswerFollowUpRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[conversations_pb2.ConversationEvent]:
        user_id, conversation_id = _ref(request)
        async for event in self._writer.answer_follow_up(
            user_id, conversation_id, list(request.answers)
        ):
            yield event

    async def ImportConversation(
        self,
        request: conversations_pb2.ImportConversationRequest,
        context: grpc.aio.ServicerContext,
    ) -> conversations_pb2.ImportConversationResponse:
        async with self._db.session_scope() as session:
            conversation_id, imported = await service.import_conversation(session, request)
        return conversations_pb2.ImportConversationResponse(
            conversation_id=str(conversation_id), imported=imported
        )
