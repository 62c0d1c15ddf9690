"""Every FastAPI dependency of the routes, in one place: the backend clients,
the authenticated user, path ids and the JSON body check."""

from __future__ import annotations

import email.message
import uuid
from typing import Annotated

from fabula_common.errors import Unauthenticated
from fabula_common.tokens import AccessClaims, verify_access_token
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fabula_gateway.clients import ServiceClients
from fabula_gateway.problems import NOT_FOUND, UNSUPPORTED_MEDIA_TYPE, ProblemError, unauthenticated


async def get_clients(request: Request) -> ServiceClients:
    """The backend clients opened by the app's lifespan."""
    return request.app.state.clients


Clients = Annotated[ServiceClients, Depends(get_clients)]

# --- Authentication: access tokens are verified here, without a network call.

# auto_error=False: the 401 is ours (problem+json with a proper challenge).
bearer_scheme = HTTPBearer(
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description="The `access_token` from /v1/auth/register, /login or /refresh.",
    auto_error=False,
)


async def current_access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> AccessClaims:
    """The request's verified access token: its user and when it was issued."""
    if credentials is None:
        if "authorization" in request.headers:
            raise unauthenticated(
                "The Authorization header must be 'Bearer <access token>'.", invalid_token=True
            )
        raise unauthenticated("A bearer access token is required.", invalid_token=False)
    try:
        claims = verify_access_token(request.app.state.settings, credentials.credentials)
    except Unauthenticated as exc:
        raise unauthenticated(exc.message, invalid_token=True) from None
    return claims


CurrentAccess = Annotated[AccessClaims, Depends(current_access)]


async def current_user_id(access: CurrentAccess) -> str:
    """Id of the user the request's access token was issued to."""
    return access.user_id


CurrentUserId = Annotated[str, Depends(current_user_id)]

# --- Path parameters and bodies


async def _story_id(
    story_id: Annotated[
        str,
        Path(
            description="The story's id (a UUID).",
            examples=["6a1f0c2e-9d8b-4e7a-8c6d-5b4a3f2e1d0c"],
        ),
    ],
) -> str:
    # Not a UUID means no such story: 404 like any other unknown id, not 422.
    try:
        return str(uuid.UUID(story_id))
    except ValueError:
        raise ProblemError(NOT_FOUND, "Story not found.") from None


StoryId = Annotated[str, Depends(_story_id)]


def is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def _require_json_body(request: Request) -> None:
    # FastAPI would read a non-JSON body as bytes and report a 422 about the
    # fields; the honest answer is that the media type is wrong.
    if await request.body() and not is_json_media_type(request.headers.get("content-type")):
        raise ProblemError(UNSUPPORTED_MEDIA_TYPE)


JsonBody = Annotated[None, Depends(_require_json_body)]
