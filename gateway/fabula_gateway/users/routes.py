"""Accounts and tokens (users service)."""

from __future__ import annotations

from typing import Annotated

from fabula.users.v1 import users_pb2
from fastapi import APIRouter, Header, status

from fabula_gateway.dependencies import Clients, CurrentUserId, JsonBody
from fabula_gateway.openapi import problem_responses
from fabula_gateway.users.mappers import tokens_from_proto, user_from_proto
from fabula_gateway.users.schemas import (
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    User,
)

router = APIRouter(tags=["auth"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Makes a retry safe: the same key with the same body answers with the "
        "account the first request created (a new token pair); with another body, 422. "
        "Remembered for 24 hours. Use a fresh random value (e.g. a UUID) per registration.",
    ),
]


@router.post(
    "/v1/auth/register",
    operation_id="register",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenResponse,
    summary="Create an account",
    description="Creates an account and logs it in: the answer holds its first token pair. "
    "Send an `Idempotency-Key` to retry safely after a lost answer.",
    responses=problem_responses(
        409,
        413,
        415,
        422,
        500,
        503,
        s409="The email address is already registered.",
        s422="The request is not valid, or its Idempotency-Key was used with another body "
        "(type `idempotency-key-reused`).",
        s503="A backend is unavailable, or too many logins are being served (type "
        "`too-busy`); retry after Retry-After.",
    ),
)
async def register(
    body: RegisterRequest,
    _json: JsonBody,
    clients: Clients,
    idempotency_key: IdempotencyKey = None,
) -> TokenResponse:
    reply = await clients.users.Register(
        users_pb2.RegisterRequest(
            email=body.email,
            password=body.password,
            full_name=body.full_name or "",
            idempotency_key=idempotency_key or "",
        )
    )
    return tokens_from_proto(reply)


@router.post(
    "/v1/auth/login",
    operation_id="login",
    response_model=TokenResponse,
    summary="Log in",
    description="Exchanges email and password for a token pair. An unknown email and a "
    "wrong password get the same 401.",
    responses=problem_responses(
        401,
        413,
        415,
        422,
        500,
        503,
        s401="Unknown email or wrong password.",
        s503="A backend is unavailable, or too many logins are being served (type "
        "`too-busy`); retry after Retry-After.",
    ),
)
async def login(body: LoginRequest, _json: JsonBody, clients: Clients) -> TokenResponse:
    reply = await clients.users.Login(
        users_pb2.LoginRequest(email=body.email, password=body.password)
    )
    return tokens_from_proto(reply)


@router.post(
    "/v1/auth/refresh",
    operation_id="refresh_tokens",
    response_model=TokenResponse,
    summary="Refresh the token pair",
    description="Exchanges a refresh token for a new token pair. The refresh token "
    "presented stops working (rotation); presented again within a few seconds (another "
    "tab, a retry) it answers with the same new refresh token, later it ends the session.",
    responses=problem_responses(
        401, 413, 415, 422, 500, 503, s401="Unknown, expired or already used refresh token."
    ),
)
async def refresh_tokens(body: RefreshRequest, _json: JsonBody, clients: Clients) -> TokenResponse:
    reply = await clients.users.Refresh(users_pb2.RefreshRequest(refresh_token=body.refresh_token))
    return tokens_from_proto(reply)


@router.get(
    "/v1/me",
    operation_id="get_current_user",
    response_model=User,
    summary="The current user",
    description="The account the access token belongs to.",
    responses=problem_responses(401, 404, 500, 503),
)
async def get_current_user(user_id: CurrentUserId, clients: Clients) -> User:
    reply = await clients.users.GetUser(users_pb2.GetUserRequest(user_id=user_id))
    return user_from_proto(reply)
