"""Administration: users as an administrator sees them, actions and the audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fabula_gateway.billing.schemas import Usage
from fabula_gateway.schemas import NoNul, RequestBody

USER_ID = "6f1c2a8e-3b7d-4c59-9e0a-1d2f3a4b5c6d"
ADMIN_ID = "1d2f3a4b-5c6d-4e7f-8a9b-0c1d2e3f4a5b"

Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000), NoNul]


class AdminUser(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": USER_ID,
                    "email": "ada@example.com",
                    "full_name": "Ada",
                    "created_at": "2025-01-01T12:00:00Z",
                    "is_active": True,
                    "is_superuser": False,
                    "is_verified": True,
                }
            ]
        }
    )

    id: str
    email: str
    full_name: str | None
    created_at: dt.datetime
    is_active: bool = Field(description="False: the account cannot sign in or call the API.")
    is_superuser: bool
    is_verified: bool


class AdminUserPage(BaseModel):
    items: list[AdminUser]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class AdminUserDetail(BaseModel):
    user: AdminUser
    usage: Usage = Field(description="The user's plan and this period's usage (billing).")


class ReasonRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "spam reports"}]})

    reason: Reason | None = Field(None, description="Kept in the audit trail.")


class SetPlanRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"plan": "pro", "reason": "conference speaker comp"}]}
    )

    plan: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), NoNul
    ] = Field(description="Why, kept with the change and in the audit trail.")


class SetSuperuserRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"superuser": True, "reason": "joins support"}]}
    )

    superuser: bool
    reason: Reason | None = Field(None, description="Kept in the audit trail.")


class AuditEntry(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b7f3c1e-8a52-4d0e-9f61-2c4b5a6d7e8f",
                    "actor_id": ADMIN_ID,
                    "action": "user.deactivated",
                    "target_user_id": USER_ID,
                    "details": {"reason": "spam reports"},
                    "created_at": "2025-01-02T09:30:00Z",
                }
            ]
        }
    )

    id: str
    actor_id: str | None = Field(
        description="The administrator; null when done by a command (`details.via`) or when "
        "the account was deleted since."
    )
    action: str = Field(
        description="`user.deactivated`, `user.reactivated`, `superuser.granted`, "
        "`superuser.revoked` or `plan.set`."
    )
    target_user_id: str | None
    details: dict[str, str]
    created_at: dt.datetime


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None
