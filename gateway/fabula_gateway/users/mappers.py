"""users.v1 messages -> public JSON shapes."""

from __future__ import annotations

from fabula.users.v1 import users_pb2

from fabula_gateway.users.schemas import TokenResponse, User


def user_from_proto(user: users_pb2.User) -> User:
    return User(id=user.id, email=user.email, full_name=user.full_name or None)


def tokens_from_proto(reply: users_pb2.TokenResponse) -> TokenResponse:
    return TokenResponse(
        access_token=reply.access_token,
        refresh_token=reply.refresh_token,
        expires_in=reply.expires_in,
        user=user_from_proto(reply.user),
    )
