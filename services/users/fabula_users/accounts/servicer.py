"""gRPC edge of the users service: proto <-> domain, one transaction per call."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.db import Database
from fabula_common.errors import Unauthenticated

from fabula_users.accounts.models import User
from fabula_users.accounts.service import (
    IssuedTokens,
    RefreshTokenReused,
    RegisteredMeanwhile,
    UsersService,
    email_taken,
    normalise_email,
)
from fabula_users.accounts.throttle import LoginThrottle


def user_to_proto(user: User) -> users_pb2.User:
    return users_pb2.User(
        id=str(user.id),
        email=user.email,
        full_name=user.full_name,
        created_at=user.created_at,
        is_active=user.is_active,
        is_superuser=user.is_superuser,
        avatar_url=user.avatar_url or "",
        birthdate=user.birthdate.isoformat() if user.birthdate else "",
        locale=user.locale,
        is_verified=user.is_verified,
        last_login_at=user.last_login_at,
        has_password=bool(user.password_hash),
    )


def token_response(issued: IssuedTokens) -> users_pb2.TokenResponse:
    return users_pb2.TokenResponse(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.access_token_expires_in,
        user=user_to_proto(issued.user),
    )


class UsersServicer(users_pb2_grpc.UsersServiceServicer):
    def __init__(
        self,
        db: Database,
        service: UsersService,
        throttle: LoginThrottle | None = None,
        mail_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.service = service
        self.throttle = throttle or LoginThrottle(service.settings)
        # Called after a commit that queued an email (wakes the mail sender).
        self.mail_queued = mail_queued

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
                self.mail_queued()
                return token_response(issued)
            except RegisteredMeanwhile:
                async with self.db.session_scope() as session:
                    earlier = await self.service.find_registration(session, registration)
                if earlier is None:  # deleted or expired since: as without a key
                    raise email_taken() from None
        # A retry of a registration that succeeded: the same account, a new pair.
        await self.service.verify_repeated_registration(earlier, registration)
        async with self.db.session_scope() as session:
            issued = await self.service.issue_for_login(
                session, earlier, None, record_login=False
            )
        return token_response(issued)

    async def Login(
        self, request: users_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.TokenResponse:
        # In a login storm, refused before it costs a database query too.
        self.service.passwords.check_room()
        async with self.db.session_scope() as session:
            user = await self.service.find_for_login(session, request.email)
            # Last before the commit: the counter's row is locked only briefly.
            attempt = await self.throttle.admit(session, request.email, request.client_ip)
        try:
            new_password_hash = await self.service.verify_login(user, request.password)
        except Unauthenticated:
            await self.throttle.slow_down(attempt)
            raise
        async with self.db.session_scope() as session:
            await self.throttle.succeeded(session, attempt)
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

    async def FindUserByEmail(
        self, request: users_pb2.FindUserByEmailRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.User:
        async with self.db.session_scope() as session:
            user = await self.service.find_user_by_email(session, request.email)
        return user_to_proto(user)

    async def UpdateProfile(
        self, request: users_pb2.UpdateProfileRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.User:
        values = {
            "full_name": request.full_name,
            "avatar_url": request.avatar_url,
            "birthdate": request.birthdate,
            "locale": request.locale,
        }
        async with self.db.session_scope() as session:
            user = await self.service.update_profile(
                session, request.user_id, request.fields, values
            )
        return user_to_proto(user)

    async def ChangeEmail(
        self, request: users_pb2.ChangeEmailRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.User:
        email = normalise_email(request.new_email)
        self.service.passwords.check_room()
        async with self.db.session_scope() as session:
            user = await self.service.get_user(session, request.user_id)
        # argon2 runs outside any transaction.
        await self.service.verify_password(user, request.password)
        if email == user.email:
            return user_to_proto(user)
        async with self.db.session_scope() as session:
            changed = await self.service.change_email(session, user.id, email)
        self.mail_queued()
        return user_to_proto(changed)

    async def RequestEmailVerification(
        self,
        request: users_pb2.RequestEmailVerificationRequest,
        context: grpc.aio.ServicerContext,
    ) -> users_pb2.RequestEmailVerificationResponse:
        async with self.db.session_scope() as session:
            await self.service.request_verification(session, request.user_id)
        self.mail_queued()
        return users_pb2.RequestEmailVerificationResponse()

    async def VerifyEmail(
        self, request: users_pb2.VerifyEmailRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.User:
        async with self.db.session_scope() as session:
            user = await self.service.verify_email(session, request.token)
        return user_to_proto(user)

    async def RequestPasswordReset(
        self, request: users_pb2.RequestPasswordResetRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.RequestPasswordResetResponse:
        async with self.db.session_scope() as session:
            queued = await self.service.request_password_reset(session, request.email)
        if queued:
            self.mail_queued()
        return users_pb2.RequestPasswordResetResponse()

    async def ResetPassword(
        self, request: users_pb2.ResetPasswordRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.ResetPasswordResponse:
        self.service.check_new_password(request.new_password)
        # Hashed before the transaction (argon2 holds no connection); a bad
        # token then costs one hash, within the hashing admission control.
        password_hash = await self.service.passwords.hash(request.new_password)
        async with self.db.session_scope() as session:
            await self.service.reset_password(session, request.token, password_hash)
        return users_pb2.ResetPasswordResponse()
