"""users.v1 API keys -> public JSON shapes."""

from __future__ import annotations

import datetime as dt

from fabula.users.v1 import users_pb2

from fabula_gateway.api_keys.schemas import ApiKey, CreatedApiKey
from fabula_gateway.mappers import to_datetime


def _optional(message: users_pb2.ApiKey, field: str) -> dt.datetime | None:
    return to_datetime(getattr(message, field)) if message.HasField(field) else None


def _fields(message: users_pb2.ApiKey) -> dict:
    return {
        "id": message.id,
        "name": message.name,
        "scopes": list(message.scopes),
        "prefix": message.prefix,
        "created_at": to_datetime(message.created_at),
        "expires_at": _optional(message, "expires_at"),
        "last_used_at": _optional(message, "last_used_at"),
        "revoked_at": _optional(message, "revoked_at"),
    }


def api_key_from_proto(message: users_pb2.ApiKey) -> ApiKey:
    return ApiKey(**_fields(message))


def created_api_key_from_proto(reply: users_pb2.CreatedApiKey) -> CreatedApiKey:
    return CreatedApiKey(**_fields(reply.api_key), key=reply.key)
