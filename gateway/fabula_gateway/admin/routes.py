"""Administration (superusers only): users, their plan, and the audit trail.

The gateway refuses non-superusers (403, from Authenticate's answer); the
users service checks again on every call, so a revocation within the
gateway's cache time is still refused there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Annotated, TypeVar

import grpc
from fabula.billing.v1 import billing_pb2
from fabula.users.v1 import users_pb2
from fastapi import APIRouter, Depends, Path, Query

from fabula_gateway.admin.mappers import admin_user_from_proto, audit_entry_from_proto
from fabula_gateway.admin.schemas import (
    USER_ID,
    AdminUser,
    AdminUserDetail,
    AdminUserPage,
    AuditPage,
    ReasonRequest,
    SetPlanRequest,
    SetSuperuserRequest,
)
from fabula_gateway.billing.mappers import usage_from_proto
from fabula_gateway.billing.schemas import Usage
from fabula_gateway.dependencies import Clients, CurrentSuperuser, JsonBody, Principals
from fabula_gateway.openapi import problem_responses
from fabula_gateway.principals import PrincipalCache
from fabula_gateway.problems import FORBIDDEN, NOT_FOUND, ProblemError

router = APIRouter(tags=["admin"])

T = TypeVar("T")
_S403 = "Not an administrator (type `forbidden`)."
Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
]


async def _user_id(
    user_id: Annotated[str, Path(description="The user's id (a UUID).", examples=[USER_ID])],
) -> str:
    try:
        return str(uuid.UUID(user_id))
    except ValueError:
        raise ProblemError(NOT_FOUND, "User not found.") from None


UserId = Annotated[str, Depends(_user_id)]


async def _as_admin(call: Awaitable[T]) -> T:
    """users' own superuser check refused (revoked within the cache time): 403."""
    try:
        return await call
    except grpc.aio.AioRpcError as err:
        if err.code() is grpc.StatusCode.PERMISSION_DENIED:
            raise ProblemError(FORBIDDEN, "Only administrators may do this.") from None
        raise


@router.get(
    "/v1/admin/users",
    operation_id="admin_list_users",
    response_model=AdminUserPage,
    summary="List and search users",
    description="Newest first. `q` matches part of the email or the name (case-insensitive).",
    responses=problem_responses(401, 403, 422, 500, 503, s403=_S403),
)
async def admin_list_users(
    admin: CurrentSuperuser,
    clients: Clients,
    q: Annotated[str, Query(max_length=200, description="Part of an email or name.")] = "",
    limit: Limit = 20,
    cursor: Cursor = None,
) -> AdminUserPage:
    reply = await _as_admin(
        clients.users.AdminListUsers(
            users_pb2.AdminListUsersRequest(
                actor_id=admin.user_id, query=q, limit=limit, cursor=cursor or ""
            )
        )
    )
    return AdminUserPage(
        items=[admin_user_from_proto(user) for user in reply.users],
        next_cursor=reply.next_cursor or None,
    )


@router.get(
    "/v1/admin/users/{user_id}",
    operation_id="admin_get_user",
    response_model=AdminUserDetail,
    summary="One user, with plan and usage",
    responses=problem_responses(401, 403, 404, 500, 503, s403=_S403),
)
async def admin_get_user(
    admin: CurrentSuperuser, user_id: UserId, clients: Clients
) -> AdminUserDetail:
    user, usage = await asyncio.gather(
        clients.users.GetUser(users_pb2.GetUserRequest(user_id=user_id)),
        clients.billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id)),
    )
    return AdminUserDetail(user=admin_user_from_proto(user), usage=usage_from_proto(usage))


async def _set_active(
    admin_id: str,
    user_id: str,
    active: bool,
    body: ReasonRequest | None,
    clients,
    principals: PrincipalCache,
) -> AdminUser:
    reply = await _as_admin(
        clients.users.AdminSetActive(
            users_pb2.AdminSetActiveRequest(
                actor_id=admin_id,
                user_id=user_id,
                active=active,
                reason=(body.reason if body else None) or "",
            )
        )
    )
    principals.forget_account(user_id)  # takes effect at once at this gateway
    return admin_user_from_proto(reply)


@router.post(
    "/v1/admin/users/{user_id}/deactivate",
    operation_id="admin_deactivate_user",
    response_model=AdminUser,
    summary="Deactivate a user",
    description="The account can no longer sign in; its sessions end, and its access tokens "
    "and API keys stop working at once at this gateway, at other replicas within their cache "
    "time (at most 30 seconds). "
    "Administrators cannot deactivate themselves (409).",
    responses=problem_responses(401, 403, 404, 409, 415, 422, 500, 503, s403=_S403),
)
async def admin_deactivate_user(
    admin: CurrentSuperuser,
    user_id: UserId,
    _json: JsonBody,
    clients: Clients,
    principals: Principals,
    body: ReasonRequest | None = None,
) -> AdminUser:
    return await _set_active(admin.user_id, user_id, False, body, clients, principals)


@router.post(
    "/v1/admin/users/{user_id}/reactivate",
    operation_id="admin_reactivate_user",
    response_model=AdminUser,
    summary="Reactivate a user",
    description="The account may sign in again (its old sessions stay ended).",
    responses=problem_responses(401, 403, 404, 409, 415, 422, 500, 503, s403=_S403),
)
async def admin_reactivate_user(
    admin: CurrentSuperuser,
    user_id: UserId,
    _json: JsonBody,
    clients: Clients,
    principals: Principals,
    body: ReasonRequest | None = None,
) -> AdminUser:
    return await _set_active(admin.user_id, user_id, True, body, clients, principals)


@router.put(
    "/v1/admin/users/{user_id}/plan",
    operation_id="admin_set_plan",
    response_model=Usage,
    summary="Set a user's plan by hand",
    description="For support and comp accounts: billing sets the plan (keeping who and why), "
    "then the action joins the audit trail. Setting the same plan again is harmless, so a "
    "failed call may simply be retried.",
    responses=problem_responses(401, 403, 404, 415, 422, 500, 503, s403=_S403),
)
async def admin_set_plan(
    admin: CurrentSuperuser,
    user_id: UserId,
    body: SetPlanRequest,
    _json: JsonBody,
    clients: Clients,
) -> Usage:
    await clients.users.GetUser(users_pb2.GetUserRequest(user_id=user_id))  # 404 first
    usage = await clients.billing.SetPlan(
        billing_pb2.SetPlanRequest(
            user_id=user_id, plan=body.plan, actor=admin.user_id, reason=body.reason
        )
    )
    await _as_admin(
        clients.users.AdminRecordAction(
            users_pb2.AdminRecordActionRequest(
                actor_id=admin.user_id,
                action="plan.set",
                target_user_id=user_id,
                details={"plan": body.plan, "reason": body.reason},
            )
        )
    )
    return usage_from_proto(usage)


@router.post(
    "/v1/admin/users/{user_id}/superuser",
    operation_id="admin_set_superuser",
    response_model=AdminUser,
    summary="Grant or revoke administration",
    description="Takes effect at once at this gateway, at other replicas within their cache "
    "time (at most 30 seconds). Administrators cannot change their own status (409).",
    responses=problem_responses(401, 403, 404, 409, 415, 422, 500, 503, s403=_S403),
)
async def admin_set_superuser(
    admin: CurrentSuperuser,
    user_id: UserId,
    body: SetSuperuserRequest,
    _json: JsonBody,
    clients: Clients,
    principals: Principals,
) -> AdminUser:
    reply = await _as_admin(
        clients.users.AdminSetSuperuser(
            users_pb2.AdminSetSuperuserRequest(
                actor_id=admin.user_id,
                user_id=user_id,
                superuser=body.superuser,
                reason=body.reason or "",
            )
        )
    )
    principals.forget_account(user_id)
    return admin_user_from_proto(reply)


@router.get(
    "/v1/admin/audit",
    operation_id="admin_list_audit",
    response_model=AuditPage,
    summary="The audit trail",
    description="Every administrative action, newest first: who, what, on whom, details, when.",
    responses=problem_responses(401, 403, 422, 500, 503, s403=_S403),
)
async def admin_list_audit(
    admin: CurrentSuperuser,
    clients: Clients,
    user_id: Annotated[
        uuid.UUID | None, Query(description="Only actions on this user.")
    ] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> AuditPage:
    reply = await _as_admin(
        clients.users.AdminListAudit(
            users_pb2.AdminListAuditRequest(
                actor_id=admin.user_id,
                limit=limit,
                cursor=cursor or "",
                target_user_id=str(user_id) if user_id else "",
            )
        )
    )
    return AuditPage(
        items=[audit_entry_from_proto(entry) for entry in reply.entries],
        next_cursor=reply.next_cursor or None,
    )
