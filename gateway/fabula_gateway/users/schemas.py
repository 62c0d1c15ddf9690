"""Accounts and tokens: request bodies (with their limits) and responses."""

from __future__ import annotations

import datetime as dt
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


# --- Profile, verification and password reset -----------------------------------

PROFILE_EXAMPLE = {
    "id": "6f1c2a8e-3b7d-4c59-9e0a-1d2f3a4b5c6d",
    "email": "ada@example.com",
    "full_name": "Ada",
    "avatar_url": "https://cdn.example.com/ada.png",
    "birthdate": "1990-12-10",
    "locale": "en",
    "is_verified": True,
    "is_superuser": False,
    "created_at": "2025-01-01T12:00:00Z",
    "last_login_at": "2025-01-02T08:30:00Z",
}


class Profile(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [PROFILE_EXAMPLE]})

    id: str
    email: str = Field(description="Read-only here: change it with POST /v1/me/email.")
    full_name: str | None = Field(description="Null when none was given.")
    avatar_url: str | None = Field(description="An http(s) URL; null when none was given.")
    birthdate: dt.date | None = Field(description="Null when none was given.")
    locale: Literal["en", "de"] = Field(description="The language of emails and generated text.")
    is_verified: bool = Field(description="Whether the email address has been confirmed.")
    is_superuser: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None = Field(
        description="The last login with a password; null until the first after registration."
    )


AvatarUrl = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048), NoNul]


class ProfileUpdate(RequestBody):
    """Only the fields sent change; null clears full_name, avatar_url and birthdate."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"full_name": "Ada", "birthdate": "2015-06-01", "locale": "de"}]
        }
    )

    full_name: FullName | None = None
    avatar_url: AvatarUrl | None = Field(None, description="An http:// or https:// URL.")
    birthdate: dt.date | None = Field(None, description="YYYY-MM-DD, not in the future.")
    # Not nullable: an explicit null is a 422 (the default only marks "not sent").
    locale: Literal["en", "de"] = Field(None, description="`en` or `de`.")  # type: ignore


class ChangeEmailRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"new_email": "ada@example.org", "password": "correct horse battery"}]
        }
    )

    new_email: EmailStr
    password: str = Field(min_length=1, max_length=128, description="The current password.")


Token = Annotated[
    str, Field(min_length=1, max_length=512, description="The token from the email.")
]


class VerifyEmailRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"token": "3kF9yQ0c...from-the-link"}]}
    )

    token: Token


class PasswordResetRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ada@example.com"}]})

    email: EmailStr


class PasswordReset(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"token": "9dQe...from-the-link", "new_password": "a new passphrase"}]
        }
    )

    token: Token
    new_password: str = Field(min_length=8, max_length=128)
