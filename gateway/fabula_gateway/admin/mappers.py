"""users.v1 administration messages -> public JSON shapes."""

from __future__ import annotations

from fabula.users.v1 import users_pb2

from fabula_gateway.admin.schemas import AdminUser, AuditEntry
from fabula_gateway.mappers import to_datetime


def admin_user_from_proto(user: users_pb2.User) -> AdminUser:
    return AdminUser(
        id=user.id,
        email=user.email,
        full_name=user.full_name or None,
        created_at=to_datetime(user.created_at),
        is_active=user.is_active,
        is_superuser=user.is_superuser,
        is_verified=user.is_verified,
    )


def audit_entry_from_proto(entry: users_pb2.AuditEntry) -> AuditEntry:
    return AuditEntry(
        id=entry.id,
        actor_id=entry.actor_id or None,
        action=entry.action,
        target_user_id=entry.target_user_id or None,
        details=dict(entry.details),
        created_at=to_datetime(entry.created_at),
    )
