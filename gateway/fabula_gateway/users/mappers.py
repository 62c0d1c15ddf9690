"""users.v1 messages -> public JSON shapes."""

from __future__ import annotations

import datetime as dt

from fabula.users.v1 import users_pb2

from fabula_gateway.users.schemas import Profile, TokenResponse, User


def user_from_proto(user: users_pb2.User) -> User:
    return User(id=user.id, email=user.email, full_name=user.full_name or None)


def profile_from_proto(user: users_pb2.User) -> Profile:
    return Profile(
        id=user.id,
        email=user.email,
        full_name=user.full_name or None,
        avatar_url=user.avatar_url or None,
        birthdate=dt.date.fromisoformat(user.birthdate) if user.birthdate else None,
        locale=user.locale or "en",
        is_verified=user.is_verified,
        is_superuser=user.is_superuser,
        created_at=user.created_at.ToDatetime(dt.UTC),
        last_login_at=(
            user.last_login_at.ToDatetime(dt.UTC) if user.HasField("last_login_at") else None
        ),
    )


def tokens_from_proto(reply: users_pb2.TokenResponse) -> TokenResponse:
    return TokenResponse(
        access_token=reply.access_token,
        refresh_token=reply.refresh_token,
        expires_in=reply.expires_in,
        user=user_from_proto(reply.user),
    )
