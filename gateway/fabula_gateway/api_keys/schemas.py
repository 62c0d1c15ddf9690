"""API keys: the request to create one and what is shown of them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from fabula_gateway.schemas import NoNul, RequestBody

KEY_ID = "0b7f3c1e-8a52-4d0e-9f61-2c4b5a6d7e8f"


class CreateApiKeyRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "nightly export", "scopes": ["read"]},
                {"name": "ci", "scopes": ["read", "write"], "expires_at": "2026-01-01T00:00:00Z"},
            ]
        }
    )

    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
    ] = Field(description="What the key is for, to recognise it in the list.")
    scopes: list[Literal["read", "write"]] = Field(
        min_length=1,
        max_length=2,
        description="`read`: GET requests only; `write`: every request.",
    )
    expires_at: AwareDatetime | None = Field(
        None, description="When the key stops working (in the future); none: never."
    )


class ApiKey(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": KEY_ID,
                    "name": "nightly export",
                    "scopes": ["read"],
                    "prefix": "fab_3f9c0e6a5b3d",
                    "created_at": "2025-01-01T12:00:00Z",
                    "expires_at": None,
                    "last_used_at": "2025-01-02T03:00:00Z",
                    "revoked_at": None,
                }
            ]
        }
    )

    id: str
    name: str
    scopes: list[str]
    prefix: str = Field(description="The key's first characters, to recognise it.")
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None = Field(description="Within a minute or so.")
    revoked_at: dt.datetime | None


class CreatedApiKey(ApiKey):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": KEY_ID,
                    "name": "nightly export",
                    "scopes": ["read"],
                    "prefix": "fab_3f9c0e6a5b3d",
                    "created_at": "2025-01-01T12:00:00Z",
                    "expires_at": None,
                    "last_used_at": None,
                    "revoked_at": None,
                    "key": "fab_3f9c0e6a5b3d_Qm9vYmFyLXNlY3JldC1rZXktZXhhbXBsZS12YWx1ZQ",
                }
            ]
        }
    )

    key: str = Field(
        description="The key, shown this once: send it as `Authorization: Bearer <key>`."
    )


class ApiKeyList(BaseModel):
    items: list[ApiKey]
