"""Sign-in with identity providers: responses."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class IdentityProvider(BaseModel):
    name: str = Field(description="The name used in URLs, e.g. `google`.")
    display_name: str


class IdentityProviderList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "providers": [
                        {"name": "github", "display_name": "GitHub"},
                        {"name": "google", "display_name": "Google"},
                    ]
                }
            ]
        }
    )

    providers: list[IdentityProvider]


class SignInStart(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "authorization_url": "https://accounts.google.com/o/oauth2/v2/auth?"
                    "response_type=code&client_id=...&state=...&code_challenge=...",
                    "state": "Zq3m...",
                }
            ]
        }
    )

    authorization_url: str = Field(description="Send the browser here.")
    state: str = Field(description="Comes back with the code; single use, valid 10 minutes.")


class Identity(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b6f3c1e-8d2a-4f5b-9c7e-1a2b3c4d5e6f",
                    "provider": "google",
                    "subject": "110248495921238986420",
                    "email": "ada@example.com",
                    "created_at": "2025-01-01T12:00:00Z",
                }
            ]
        }
    )

    id: str
    provider: str
    subject: str = Field(description="The user's id at the provider.")
    email: str | None = Field(description="As the provider last reported it; null when none.")
    created_at: dt.datetime


class IdentityList(BaseModel):
    identities: list[Identity]
