"""API keys for scripts (users service). Managed with an access token only:
a key cannot make or revoke keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fabula.users.v1 import users_pb2
from fastapi import APIRouter, Depends, Path, status
from google.protobuf.timestamp_pb2 import Timestamp

from fabula_gateway.api_keys.mappers import api_key_from_proto, created_api_key_from_proto
from fabula_gateway.api_keys.schemas import ApiKeyList, CreateApiKeyRequest, CreatedApiKey
from fabula_gateway.dependencies import Clients, JsonBody, Principals, SignedInUserId
from fabula_gateway.openapi import problem_responses
from fabula_gateway.problems import NOT_FOUND, ProblemError

router = APIRouter(tags=["api-keys"])

_S403 = "Sent with an API key: keys are managed with an access token (type `forbidden`)."


async def _api_key_id(
    api_key_id: Annotated[str, Path(description="The key's id.", examples=[str(uuid.UUID(int=1))])],
) -> str:
    try:
        return str(uuid.UUID(api_key_id))
    except ValueError:
        raise ProblemError(NOT_FOUND, "API key not found.") from None


@router.post(
    "/v1/me/api-keys",
    operation_id="create_api_key",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedApiKey,
    summary="Create an API key",
    description="Creates a key for scripts. The answer holds the key itself, **shown this "
    "once** (only its hash is kept). Send it as `Authorization: Bearer <key>`; a `read` key "
    "may only GET.",
    responses=problem_responses(401, 403, 413, 415, 422, 500, 503, s403=_S403),
)
async def create_api_key(
    body: CreateApiKeyRequest, _json: JsonBody, user_id: SignedInUserId, clients: Clients
) -> CreatedApiKey:
    request = users_pb2.CreateApiKeyRequest(user_id=user_id, name=body.name, scopes=body.scopes)
    if body.expires_at is not None:
        expires_at = Timestamp()
        expires_at.FromDatetime(body.expires_at)
        request.expires_at.CopyFrom(expires_at)
    reply = await clients.users.CreateApiKey(request)
    return created_api_key_from_proto(reply)


@router.get(
    "/v1/me/api-keys",
    operation_id="list_api_keys",
    response_model=ApiKeyList,
    summary="List API keys",
    description="The account's keys, newest first, revoked ones included; never the secrets.",
    responses=problem_responses(401, 403, 500, 503, s403=_S403),
)
async def list_api_keys(user_id: SignedInUserId, clients: Clients) -> ApiKeyList:
    reply = await clients.users.ListApiKeys(users_pb2.ListApiKeysRequest(user_id=user_id))
    return ApiKeyList(items=[api_key_from_proto(key) for key in reply.api_keys])


@router.delete(
    "/v1/me/api-keys/{api_key_id}",
    operation_id="revoke_api_key",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key",
    description="The key stops working at once at this gateway; at other replicas, within "
    "their cache time (at most 30 seconds). Revoking a revoked key again is a no-op.",
    responses=problem_responses(401, 403, 404, 500, 503, s403=_S403),
)
async def revoke_api_key(
    user_id: SignedInUserId,
    api_key_id: Annotated[str, Depends(_api_key_id)],
    clients: Clients,
    principals: Principals,
) -> None:
    await clients.users.RevokeApiKey(
        users_pb2.RevokeApiKeyRequest(user_id=user_id, api_key_id=api_key_id)
    )
    # The account's other answers go too: users is asked again, once.
    principals.forget_account(user_id)
