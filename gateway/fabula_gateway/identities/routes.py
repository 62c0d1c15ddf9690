"""Sign-in with an identity provider (users service): the providers, the
authorization-code flow (PKCE, state and nonce are kept by the users
service), and the identities linked to the current account."""

from __future__ import annotations

from typing import Annotated

from fabula.users.v1 import users_pb2
from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse

from fabula_gateway.dependencies import Clients, CurrentUserId
from fabula_gateway.identities.schemas import (
    Identity,
    IdentityList,
    IdentityProvider,
    IdentityProviderList,
    SignInStart,
)
from fabula_gateway.mappers import to_datetime
from fabula_gateway.openapi import problem_responses
from fabula_gateway.problems import VALIDATION_FAILED, ProblemError, unauthenticated
from fabula_gateway.users.mappers import tokens_from_proto
from fabula_gateway.users.schemas import TokenResponse

router = APIRouter(tags=["auth"])

ProviderName = Annotated[
    str,
    Path(
        max_length=64, description="A provider's name from /v1/auth/providers.", examples=["google"]
    ),
]
RedirectUri = Annotated[
    str | None,
    Query(
        max_length=2000,
        description="Where the provider sends the browser back with `code` and `state` (an "
        "app's own page, registered at the provider). Default: this gateway's callback.",
    ),
]


def _callback_url(request: Request, provider: str) -> str:
    base = request.app.state.settings.public_url
    if base:
        return f"{base.rstrip('/')}/v1/auth/oidc/{provider}/callback"
    return str(request.url_for("complete_identity_sign_in", provider=provider))


@router.get(
    "/v1/auth/providers",
    operation_id="list_identity_providers",
    response_model=IdentityProviderList,
    summary="Identity providers to sign in with",
    responses=problem_responses(500, 503),
)
async def list_identity_providers(clients: Clients) -> IdentityProviderList:
    reply = await clients.users.ListIdentityProviders(users_pb2.ListIdentityProvidersRequest())
    return IdentityProviderList(
        providers=[
            IdentityProvider(name=p.name, display_name=p.display_name) for p in reply.providers
        ]
    )


@router.get(
    "/v1/auth/oidc/{provider}/start",
    operation_id="start_identity_sign_in",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    summary="Start signing in with an identity provider",
    description="Redirects (302) to the provider's sign-in page. With `Accept: "
    "application/json` answers 200 with the `authorization_url` instead, for an app that "
    "opens it itself. The provider comes back to `redirect_uri` with `code` and `state`, "
    "which go to the callback.",
    responses={
        200: {"model": SignInStart, "description": "With `Accept: application/json`."},
        302: {"description": "To the provider's authorization URL (`Location`)."},
        **problem_responses(404, 422, 500, 503, s404="No such provider is configured."),
    },
)
async def start_identity_sign_in(
    provider: ProviderName, request: Request, clients: Clients, redirect_uri: RedirectUri = None
) -> Response:
    reply = await clients.users.StartIdentitySignIn(
        users_pb2.StartIdentitySignInRequest(
            provider=provider, redirect_uri=redirect_uri or _callback_url(request, provider)
        )
    )
    if "application/json" in request.headers.get("accept", ""):
        start = SignInStart(authorization_url=reply.authorization_url, state=reply.state)
        return JSONResponse(start.model_dump())
    return RedirectResponse(reply.authorization_url, status_code=status.HTTP_302_FOUND)


@router.get(
    "/v1/auth/oidc/{provider}/callback",
    operation_id="complete_identity_sign_in",
    response_model=TokenResponse,
    summary="Finish signing in with an identity provider",
    description="Where the provider sends the browser back (or where an app forwards the "
    "`code` and `state` it received). Signs in the account linked to the identity; else "
    "links the account with the email the provider has verified; else creates an account "
    "(without a password). The state is single use.",
    responses=problem_responses(
        401,
        404,
        409,
        422,
        500,
        503,
        s401="The provider refused the sign-in, or its ID token did not verify.",
        s409="An account has this email but the provider has not verified it (type "
        "`already-exists`), or the provider shared no email; or a concurrent sign-in: retry.",
        s422="Unknown, used or expired state, or no code.",
    ),
)
async def complete_identity_sign_in(
    provider: ProviderName,
    clients: Clients,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    redirect_uri: RedirectUri = None,
) -> TokenResponse:
    if error:
        # The provider sends the user back with an error (e.g. access_denied).
        raise unauthenticated(
            f"The identity provider did not sign you in ({error}).", invalid_token=False
        )
    if not code or not state:
        raise ProblemError(VALIDATION_FAILED, "The callback needs `code` and `state`.")
    reply = await clients.users.CompleteIdentitySignIn(
        users_pb2.CompleteIdentitySignInRequest(
            provider=provider, state=state, code=code, redirect_uri=redirect_uri or ""
        )
    )
    return tokens_from_proto(reply)


@router.get(
    "/v1/me/identities",
    operation_id="list_identities",
    response_model=IdentityList,
    summary="Identities linked to the current account",
    responses=problem_responses(401, 404, 500, 503),
)
async def list_identities(user_id: CurrentUserId, clients: Clients) -> IdentityList:
    reply = await clients.users.ListIdentities(users_pb2.ListIdentitiesRequest(user_id=user_id))
    return IdentityList(
        identities=[
            Identity(
                id=i.id,
                provider=i.provider,
                subject=i.subject,
                email=i.email or None,
                created_at=to_datetime(i.created_at),
            )
            for i in reply.identities
        ]
    )


@router.delete(
    "/v1/me/identities/{identity_id}",
    operation_id="unlink_identity",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Unlink an identity",
    description="The provider can no longer sign in to this account. Refused (409) when it "
    "is the account's only way to sign in (no password and no other identity).",
    responses=problem_responses(
        401,
        404,
        409,
        500,
        503,
        s409="It is the account's last way to sign in: set a password or link another first.",
    ),
)
async def unlink_identity(
    identity_id: Annotated[str, Path(max_length=64, description="The identity's id.")],
    user_id: CurrentUserId,
    clients: Clients,
) -> Response:
    await clients.users.UnlinkIdentity(
        users_pb2.UnlinkIdentityRequest(user_id=user_id, identity_id=identity_id)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
