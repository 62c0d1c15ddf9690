"""Accounts and tokens: request bodies (with their limits) and responses."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from fabula_gateway.schemas import NoNul, RequestBody

# Trimmed before the limit applies.
FullName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), NoNul]


class RegisterRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "password": "correct horse battery",
                    "full_name": "Ada",
                }
            ]
        }
    )

    email: EmailStr
    # Passwords are taken byte for byte: no trimming.
    password: str = Field(min_length=8, max_length=128)
    full_name: FullName | None = None


class LoginRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery"}]
        }
    )

    email: EmailStr
    # No minimum beyond non-empty: a wrong password is a 401 like any other,
    # and a future change of the registration rule must not lock anyone out.
    password: str = Field(min_length=1, max_length=128)


class RefreshRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"refresh_token": "rt_9f8e7d6c5b4a"}]}
    )

    refresh_token: str = Field(min_length=1, max_length=512)


class User(BaseModel):
    id: str
    email: str
    full_name: str | None = Field(description="Null when none was given.")


class TokenResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
                    "refresh_token": "rt_9f8e7d6c5b4a",
                    "token_type": "bearer",
                    "expires_in": 900,
                    "user": {
                        "id": "6f1c2a8e-3b7d-4c59-9e0a-1d2f3a4b5c6d",
                        "email": "ada@example.com",
                        "full_name": "Ada",
                    },
                }
            ]
        }
    )

    access_token: str = Field(description="Send as `Authorization: Bearer <access_token>`.")
    refresh_token: str = Field(
        description="Single use: POST it to /v1/auth/refresh for a new pair; it then stops working."
    )
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    user: User
