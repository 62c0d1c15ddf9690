"""Public JSON shapes of the account's export and deletion."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DeleteAccountRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"password": "correct horse battery"}]},
    )

    password: str | None = Field(
        None,
        max_length=1024,
        description="The account's password. Not needed when the access token was issued "
        "within the last few minutes (USERS_FRESH_SIGN_IN_SECONDS, 300 by default).",
    )


class AccountExport(BaseModel):
    """Everything Fabula holds about the user, one member per service, each
    as that service's contract spells it (snake_case field names)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "format": "fabula-export/1",
                    "exported_at": "2026-11-30T10:00:00Z",
                    "user_id": "6f1c2a8e-3b7d-4c59-9e0a-1d2f3a4b5c6d",
                    "users": {
                        "user": {"id": "6f1c2a8e-...", "email": "ada@example.com"},
                        "identities": [],
                        "api_keys": [],
                    },
                    "stories": [
                        {"id": "...", "title": "The Lighthouse", "segments": [{"text": "..."}]}
                    ],
                    "conversations": [
                        {"id": "...", "title": "Gripping openings", "messages": [{"role": "user"}]}
                    ],
                    "projects": [{"id": "...", "name": "Saga", "narratives": []}],
                    "pictures": {"drawings": [], "picture_stories": []},
                    "photos": [{"id": "...", "status": "PHOTO_STATUS_COMPLETED"}],
                    "billing": {"usage": {"plan": "free", "generations_used": "4"}},
                }
            ]
        }
    )

    format: str = Field(description="The document's format and version.")
    exported_at: str
    user_id: str
    users: dict[str, Any] = Field(description="Profile, identities, API keys (no secrets).")
    stories: list[dict[str, Any]] = Field(description="Every story with all its segments.")
    conversations: list[dict[str, Any]] = Field(
        description="Every council conversation with its messages, hidden ones too."
    )
    projects: list[dict[str, Any]] = Field(
        description="Every project with every version of its narratives (texts included)."
    )
    pictures: dict[str, Any] = Field(description="Drawings and picture stories.")
    photos: list[dict[str, Any]] = Field(
        description="The photos' records; the files are at /v1/photos/{id} (these URLs expire)."
    )
    billing: dict[str, Any] = Field(
        description="Plan and usage, the subscription, every usage log entry, invoices."
    )
