"""Bearer authentication: access tokens are verified here, without a network call."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fabula_common.errors import Unauthenticated
from fabula_common.tokens import verify_access_token
from fabula_gateway.problems import unauthenticated

# auto_error=False: the 401 is ours (problem+json with a proper challenge).
bearer_scheme = HTTPBearer(
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description="The `access_token` from /v1/auth/register, /login or /refresh.",
    auto_error=False,
)


async def current_user_id(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """Id of the user the request's access token was issued to."""
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
    return claims.user_id


CurrentUserId = Annotated[str, Depends(current_user_id)]
