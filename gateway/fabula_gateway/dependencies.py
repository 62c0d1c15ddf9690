"""Every FastAPI dependency of the routes, in one place: the backend clients,
the authenticated user, path ids and the JSON body check."""

from __future__ import annotations

import email.message
import uuid
from typing import Annotated

from fabula_common.context import child_safe_var
from fabula_common.errors import Unauthenticated
from fabula_common.tokens import AccessClaims
from fastapi import Depends, Path, Request
from fastapi.security import HTTPBearer

from fabula_gateway.clients import ServiceClients
from fabula_gateway.principals import API_KEY_PREFIX, Principal, PrincipalCache, Refused
from fabula_gateway.problems import (
    FORBIDDEN,
    NOT_FOUND,
    UNSUPPORTED_MEDIA_TYPE,
    ProblemError,
    insufficient_scope,
    unauthenticated,
)


async def get_clients(request: Request) -> ServiceClients:
    """The backend clients opened by the app's lifespan."""
    return request.app.state.clients


Clients = Annotated[ServiceClients, Depends(get_clients)]


async def get_principals(request: Request) -> PrincipalCache:
    """What users answered about credentials, cached (principals.py)."""
    return request.app.state.principals


Principals = Annotated[PrincipalCache, Depends(get_principals)]

# --- Authentication: an access token is verified here, without a network call
# (a valid token once, then remembered: app.state.tokens); whether its account
# (or an API key) may still act is users' answer to Authenticate, cached
# briefly (principals.py).


class BearerToken(HTTPBearer):
    """FastAPI's HTTPBearer (the same security scheme in the OpenAPI
    document), answering the token itself, or None when the request has no
    `Bearer <token>` Authorization: no credentials model built per request."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        token = token.strip()
        return token if token and scheme.lower() == "bearer" else None


# auto_error=False: the 401 is ours (problem+json with a proper challenge).
bearer_scheme = BearerToken(
    scheme_name="bearerAuth",
    bearerFormat="JWT or API key",
    description="The `access_token` from /v1/auth/register, /login or /refresh, or an API "
    "key (`fab_...`) from /v1/me/api-keys.",
    auto_error=False,
)


async def current_principal(
    request: Request,
    token: Annotated[str | None, Depends(bearer_scheme)],
    clients: Clients,
) -> Principal:
    """Who the request acts for, within its credential's scopes: a read-only
    API key gets 403 on anything but GET and HEAD."""
    if token is None:
        if "authorization" in request.headers:
            raise unauthenticated(
                "The Authorization header must be 'Bearer <access token or API key>'.",
                invalid_token=True,
            )
        raise unauthenticated("A bearer access token is required.", invalid_token=False)
    principals: PrincipalCache = request.app.state.principals
    if token.startswith(API_KEY_PREFIX):
        answer = await principals.for_api_key(clients.users, token)
    else:
        try:
            claims = request.app.state.tokens.verify(token)
        except Unauthenticated as exc:
            raise unauthenticated(exc.message, invalid_token=True) from None
        request.state.access_claims = claims
        answer = await principals.for_user(clients.users, claims.user_id)
    if isinstance(answer, Refused):
        raise unauthenticated(answer.detail, invalid_token=True)
    if not answer.may(request.method):
        raise insufficient_scope("write")
    # Carried by every gRPC call this request makes (fabula_common.grpc_client).
    child_safe_var.set(answer.child_safe)
    return answer


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_user_id(principal: CurrentPrincipal) -> str:
    """Id of the user the request acts for."""
    return principal.user_id


CurrentUserId = Annotated[str, Depends(current_user_id)]


async def current_access(request: Request, principal: CurrentPrincipal) -> AccessClaims:
    """The request's verified access token (its user and when it was issued),
    for what only a signed-in user, not an API key, may do."""
    if principal.api_key_id:
        raise ProblemError(FORBIDDEN, "This needs an access token, not an API key.")
    return request.state.access_claims


CurrentAccess = Annotated[AccessClaims, Depends(current_access)]


async def _signed_in_user_id(principal: CurrentPrincipal) -> str:
    # A leaked key must not be able to mint more keys.
    if principal.api_key_id:
        raise ProblemError(FORBIDDEN, "API keys are managed with an access token, not a key.")
    return principal.user_id


SignedInUserId = Annotated[str, Depends(_signed_in_user_id)]


async def _superuser(principal: CurrentPrincipal) -> Principal:
    if not principal.is_superuser:
        raise ProblemError(FORBIDDEN, "Only administrators may do this.")
    return principal


CurrentSuperuser = Annotated[Principal, Depends(_superuser)]

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
