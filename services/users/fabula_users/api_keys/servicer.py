"""gRPC edge of API keys and Authenticate: one transaction per call."""

from __future__ import annotations

import datetime as dt

import grpc
from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.db import Database
from fabula_common.errors import InvalidArgument

from fabula_users.accounts.service import is_child
from fabula_users.api_keys import service
from fabula_users.api_keys.models import ApiKey


def api_key_to_proto(api_key: ApiKey) -> users_pb2.ApiKey:
    message = users_pb2.ApiKey(
        id=str(api_key.id),
        name=api_key.name,
        scopes=list(api_key.scopes),
        prefix=api_key.prefix,
        created_at=api_key.created_at,
    )
    for field in ("expires_at", "last_used_at", "revoked_at"):
        moment = getattr(api_key, field)
        if moment is not None:
            getattr(message, field).FromDatetime(moment)
    return message


class ApiKeysServicer(users_pb2_grpc.UsersServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def CreateApiKey(
        self, request: users_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.CreatedApiKey:
        expires_at = (
            request.expires_at.ToDatetime(dt.UTC) if request.HasField("expires_at") else None
        )
        async with self.db.session_scope() as session:
            api_key, key = await service.create(
                session,
                user_id=request.user_id,
                name=request.name,
                scopes=list(request.scopes),
                expires_at=expires_at,
            )
            return users_pb2.CreatedApiKey(api_key=api_key_to_proto(api_key), key=key)

    async def ListApiKeys(
        self, request: users_pb2.ListApiKeysRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.ListApiKeysResponse:
        async with self.db.session_scope() as session:
            keys = await service.list_for_user(session, request.user_id)
            return users_pb2.ListApiKeysResponse(api_keys=[api_key_to_proto(k) for k in keys])

    async def RevokeApiKey(
        self, request: users_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.RevokeApiKeyResponse:
        async with self.db.session_scope() as session:
            await service.revoke(session, user_id=request.user_id, api_key_id=request.api_key_id)
        return users_pb2.RevokeApiKeyResponse()

    async def Authenticate(
        self, request: users_pb2.AuthenticateRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.Principal:
        credential = request.WhichOneof("credential")
        async with self.db.session_scope() as session:
            if credential == "api_key":
                api_key, user = await service.authenticate_key(session, request.api_key)
                return users_pb2.Principal(
                    user_id=str(user.id),
                    scopes=list(api_key.scopes),
                    api_key_id=str(api_key.id),
                    is_superuser=user.is_superuser,
                    child_safe=is_child(user.birthdate),
                )
            if credential == "user_id":
                user = await service.authenticate_user(session, request.user_id)
                return users_pb2.Principal(
                    user_id=str(user.id),
                    is_superuser=user.is_superuser,
                    child_safe=is_child(user.birthdate),
                )
        raise InvalidArgument("credential: an api_key or a user_id is required")
