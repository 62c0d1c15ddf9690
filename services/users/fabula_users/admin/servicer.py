"""gRPC edge of administration: one transaction per call, the audit row in it."""

from __future__ import annotations

import grpc
from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.db import Database

from fabula_users.accounts.servicer import user_to_proto
from fabula_users.admin import service
from fabula_users.admin.models import AuditEntry


def audit_entry_to_proto(entry: AuditEntry) -> users_pb2.AuditEntry:
    return users_pb2.AuditEntry(
        id=str(entry.id),
        actor_id=str(entry.actor_id) if entry.actor_id else "",
        action=entry.action,
        target_user_id=str(entry.target_user_id) if entry.target_user_id else "",
        details=entry.details,
        created_at=entry.created_at,
    )


class AdminServicer(users_pb2_grpc.UsersServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def AdminListUsers(
        self, request: users_pb2.AdminListUsersRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.AdminListUsersResponse:
        async with self.db.session_scope() as session:
            users, next_cursor = await service.list_users(
                session,
                actor_id=request.actor_id,
                query=request.query,
                limit=request.limit,
                cursor=request.cursor,
            )
            return users_pb2.AdminListUsersResponse(
                users=[user_to_proto(user) for user in users], next_cursor=next_cursor
            )

    async def AdminSetActive(
        self, request: users_pb2.AdminSetActiveRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.User:
        async with self.db.session_scope() as session:
            user = await service.set_active(
                session,
                actor_id=request.actor_id,
                user_id=request.user_id,
                active=request.active,
                reason=request.reason,
            )
            return user_to_proto(user)

    async def AdminSetSuperuser(
        self, request: users_pb2.AdminSetSuperuserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.User:
        async with self.db.session_scope() as session:
            user = await service.set_superuser(
                session,
                actor_id=request.actor_id,
                user_id=request.user_id,
                superuser=request.superuser,
                reason=request.reason,
            )
            return user_to_proto(user)

    async def AdminRecordAction(
        self, request: users_pb2.AdminRecordActionRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.AuditEntry:
        async with self.db.session_scope() as session:
            entry = await service.record_action(
                session,
                actor_id=request.actor_id,
                action=request.action,
                target_user_id=request.target_user_id,
                details=dict(request.details),
            )
            return audit_entry_to_proto(entry)

    async def AdminListAudit(
        self, request: users_pb2.AdminListAuditRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.AdminListAuditResponse:
        async with self.db.session_scope() as session:
            entries, next_cursor = await service.list_audit(
                session,
                actor_id=request.actor_id,
                limit=request.limit,
                cursor=request.cursor,
                target_user_id=request.target_user_id,
            )
            return users_pb2.AdminListAuditResponse(
                entries=[audit_entry_to_proto(entry) for entry in entries],
                next_cursor=next_cursor,
            )
