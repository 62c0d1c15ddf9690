"""The leaving RPCs of fabula.users.v1.UsersService: ExportUser, DeleteUser."""

from __future__ import annotations

import datetime as dt

import grpc
from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.db import Database

from fabula_users.accounts.servicer import user_to_proto
from fabula_users.leaving.service import LeavingService


class LeavingServicer(users_pb2_grpc.UsersServiceServicer):
    def __init__(self, db: Database, leaving: LeavingService) -> None:
        self.db = db
        self.leaving = leaving

    async def ExportUser(
        self, request: users_pb2.ExportUserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.UserExport:
        async with self.db.session_scope() as session:
            data = await self.leaving.export(session, request.user_id)
        return users_pb2.UserExport(
            user=user_to_proto(data.user), identities=data.identities, api_keys=data.api_keys
        )

    async def DeleteUser(
        self, request: users_pb2.DeleteUserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.DeleteUserResponse:
        signed_in_at = (
            request.fresh_sign_in_at.ToDatetime(tzinfo=dt.UTC)
            if request.HasField("fresh_sign_in_at")
            else None
        )
        async with self.db.session_scope() as session:
            user = await self.leaving.find_for_deletion(session, request.user_id)
        # No connection held while argon2 works.
        await self.leaving.confirm_deletion(user, request.password, signed_in_at)
        async with self.db.session_scope() as session:
            await self.leaving.delete(session, user.id)
        return users_pb2.DeleteUserResponse()
