"""gRPC edge of the users service: proto <-> domain, one transaction per call."""

from __future__ import annotations

import grpc
from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.db import Database

from fabula_users.accounts.models import User
from fabula_users.accounts.service import (
    IssuedTokens,
    RefreshTokenReused,
    RegisteredMeanwhile,
    UsersService,
    email_taken,
)


def user_to_proto(user: User) -> users_pb2.User:
    return users_pb2.User(
        id=str(user.id),
        email=user.email,
        full_name=user.full_name,
        created_at=user.created_at,
        is_verified=user.is_verified,
        has_password=user.password_hash is not None,
        is_active=user.is_active,
        is_superuser=user.is_superuser,
    )


def token_response(issued: IssuedTokens) -> users_pb2.TokenResponse:
    return users_pb2.TokenResponse(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.access_token_expires_in,
        user=user_to_proto(issued.user),
    )


class UsersServicer(users_pb2_grpc.UsersServiceServicer):
    def __init__(self, db: Database, service: UsersService) -> None:
        self.db = db
        self.service = service

    async def Register(
        self, request: users_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.TokenResponse:
        registration = self.service.check_registration(
            email=request.email,
            password=request.password,
            full_name=request.full_name,
            idempotency_key=request.idempotency_key,
        )
        # Either way it hashes; in a login storm, refused before any query.
        self.service.passwords.check_room()
        earlier = None
        if registration.key_hash is not None:
            async with self.db.session_scope() as session:
                earlier = await self.service.find_registration(session, registration)
        if earlier is None:
            password_hash = await self.service.hash_password(registration)
            try:
                async with self.db.session_scope() as session:
                    issued = await self.service.register(session, registration, password_hash)
                return token_response(issued)
            except RegisteredMeanwhile:
                async with self.db.session_scope() as session:
                    earlier = await self.service.find_registration(session, registration)
                if earlier is None:  # deleted or expired since: as without a key
                    raise email_taken() from None
        # A retry of a registration that succeeded: the same account, a new pair.
        await self.service.verify_repeated_registration(earlier, registration)
        async with self.db.session_scope() as session:
            issued = await self.service.issue_for_login(session, earlier, None)
        return token_response(issued)

    async def Login(
        self, request: users_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.TokenResponse:
        # In a login storm, refused before it costs a database query too.
        self.service.passwords.check_room()
        async with self.db.session_scope() as session:
            user = await self.service.find_for_login(session, request.email)
        new_password_hash = await self.service.verify_login(user, request.password)
        async with self.db.session_scope() as session:
            issued = await self.service.issue_for_login(session, user, new_password_hash)
        return token_response(issued)

    async def Refresh(
        self, request: users_pb2.RefreshRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.TokenResponse:
        rejection: RefreshTokenReused | None = None
        async with self.db.session_scope() as session:
            try:
                issued = await self.service.refresh(session, request.refresh_token)
            except RefreshTokenReused as exc:
                # Raised outside the scope so the family's revocation commits.
                rejection = exc
        if rejection is not None:
            raise rejection
        return token_response(issued)

    async def GetUser(
        self, request: users_pb2.GetUserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.User:
        async with self.db.session_scope() as session:
            user = await self.service.get_user(session, request.user_id)
        return user_to_proto(user)
