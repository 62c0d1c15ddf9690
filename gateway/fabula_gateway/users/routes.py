"""Accounts and tokens (users service)."""

from __future__ import annotations

from typing import Annotated

from fabula.users.v1 import users_pb2
from fastapi import APIRouter, Header, Request, Response, status

from fabula_gateway.dependencies import Clients, CurrentUserId, JsonBody, Principals
from fabula_gateway.openapi import problem_responses
from fabula_gateway.users.mappers import profile_from_proto, tokens_from_proto
from fabula_gateway.users.schemas import (
    ChangeEmailRequest,
    LoginRequest,
    PasswordReset,
    PasswordResetRequest,
    Profile,
    ProfileUpdate,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    VerifyEmailRequest,
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
    "An email with a link to verify the address is sent. "
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
    "wrong password get the same 401. After repeated failures for an account (by default "
    "10 within 15 minutes) or from one address, answers are slowed and then 429 until "
    "Retry-After, even for the right password.",
    responses=problem_responses(
        401,
        413,
        415,
        422,
        429,
        500,
        503,
        s401="Unknown email or wrong password.",
        s429="Too many failed logins for this account or from this address (type "
        "`too-many-attempts`); retry after Retry-After.",
        s503="A backend is unavailable, or too many logins are being served (type "
        "`too-busy`); retry after Retry-After.",
    ),
)
async def login(
    body: LoginRequest,
    _json: JsonBody,
    clients: Clients,
    request: Request,
    principals: Principals,
) -> TokenResponse:
    # The server resolves the client's address from trusted proxies' headers.
    client_ip = request.client.host if request.client else ""
    reply = await clients.users.Login(
        users_pb2.LoginRequest(email=body.email, password=body.password, client_ip=client_ip)
    )
    principals.forget_account(reply.user.id)
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
async def refresh_tokens(
    body: RefreshRequest, _json: JsonBody, clients: Clients, principals: Principals
) -> TokenResponse:
    reply = await clients.users.Refresh(users_pb2.RefreshRequest(refresh_token=body.refresh_token))
    principals.forget_account(reply.user.id)
    return tokens_from_proto(reply)


@router.get(
    "/v1/me",
    operation_id="get_current_user",
    response_model=Profile,
    summary="The current user's profile",
    description="The account the access token belongs to.",
    responses=problem_responses(401, 404, 500, 503),
)
async def get_current_user(user_id: CurrentUserId, clients: Clients) -> Profile:
    reply = await clients.users.GetUser(users_pb2.GetUserRequest(user_id=user_id))
    return profile_from_proto(reply)


@router.patch(
    "/v1/me",
    operation_id="update_current_user",
    response_model=Profile,
    summary="Change the profile",
    description="Changes the fields sent (full_name, avatar_url, birthdate, locale); the "
    "others stay. `null` clears full_name, avatar_url and birthdate. The email is changed "
    "with POST /v1/me/email.",
    responses=problem_responses(401, 404, 413, 415, 422, 500, 503),
)
async def update_current_user(
    body: ProfileUpdate,
    _json: JsonBody,
    user_id: CurrentUserId,
    clients: Clients,
    principals: Principals,
) -> Profile:
    fields = sorted(body.model_fields_set)
    reply = await clients.users.UpdateProfile(
        users_pb2.UpdateProfileRequest(
            user_id=user_id,
            fields=fields,
            full_name=body.full_name or "",
            avatar_url=body.avatar_url or "",
            birthdate=body.birthdate.isoformat() if body.birthdate else "",
            locale=body.locale or "",
        )
    )
    if "birthdate" in body.model_fields_set:
        # Whether the account gets child-safe generation follows the
        # birthdate: users is asked again on the next request.
        principals.forget_account(user_id)
    return profile_from_proto(reply)


@router.post(
    "/v1/me/email",
    operation_id="change_email",
    response_model=Profile,
    summary="Change the email address",
    description="Needs the current password. The account becomes unverified and a "
    "verification email goes to the new address.",
    responses=problem_responses(
        401,
        409,
        413,
        415,
        422,
        500,
        503,
        s401="Missing or invalid access token, or wrong password.",
        s409="Another account has this email address.",
    ),
)
async def change_email(
    body: ChangeEmailRequest, _json: JsonBody, user_id: CurrentUserId, clients: Clients
) -> Profile:
    reply = await clients.users.ChangeEmail(
        users_pb2.ChangeEmailRequest(
            user_id=user_id, new_email=body.new_email, password=body.password
        )
    )
    return profile_from_proto(reply)


@router.post(
    "/v1/auth/verify-email/request",
    operation_id="request_email_verification",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    summary="Send the verification email again",
    description="Sends a new single-use verification link to the account's address; "
    "at most one a minute (429 with `Retry-After` sooner).",
    responses=problem_responses(
        401,
        409,
        429,
        500,
        503,
        s409="The email address is already verified.",
        s429="A verification email was sent less than a minute ago.",
    ),
)
async def request_email_verification(user_id: CurrentUserId, clients: Clients) -> Response:
    await clients.users.RequestEmailVerification(
        users_pb2.RequestEmailVerificationRequest(user_id=user_id)
    )
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/v1/auth/verify-email",
    operation_id="verify_email",
    response_model=Profile,
    summary="Verify the email address",
    description="Takes the token from the emailed link (`?token=...`). Works once, within "
    "48 hours, and only for the address it was sent to.",
    responses=problem_responses(
        413, 415, 422, 500, 503, s422="Invalid request, or unknown, used or expired token."
    ),
)
async def verify_email(body: VerifyEmailRequest, _json: JsonBody, clients: Clients) -> Profile:
    reply = await clients.users.VerifyEmail(users_pb2.VerifyEmailRequest(token=body.token))
    return profile_from_proto(reply)


@router.post(
    "/v1/auth/password-reset/request",
    operation_id="request_password_reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    summary="Email a password reset link",
    description="Always 202, whether or not the address has an account (nothing is "
    "revealed). If it has, a single-use link valid for an hour is emailed.",
    responses=problem_responses(413, 415, 422, 500, 503),
)
async def request_password_reset(
    body: PasswordResetRequest, _json: JsonBody, clients: Clients
) -> Response:
    await clients.users.RequestPasswordReset(
        users_pb2.RequestPasswordResetRequest(email=body.email)
    )
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/v1/auth/password-reset",
    operation_id="reset_password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Set a new password with the emailed token",
    description="Sets the new password and ends every session of the account: all its "
    "refresh tokens stop working.",
    responses=problem_responses(
        413, 415, 422, 500, 503, s422="Invalid request, or unknown, used or expired token."
    ),
)
async def reset_password(body: PasswordReset, _json: JsonBody, clients: Clients) -> Response:
    await clients.users.ResetPassword(
        users_pb2.ResetPasswordRequest(token=body.token, new_password=body.new_password)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
