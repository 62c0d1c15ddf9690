"""Leaving: the user's export of their data, and deleting the account."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import zipfile
from typing import Annotated, Any, Literal

from fabula.billing.v1 import billing_pb2
from fabula.media.v1 import media_pb2
from fabula.stories.v1 import conversations_pb2, pictures_pb2, projects_pb2, stories_pb2
from fabula.users.v1 import users_pb2
from fastapi import APIRouter, Query, Response, status
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from fabula_gateway.account.schemas import AccountExport, DeleteAccountRequest
from fabula_gateway.clients import ServiceClients
from fabula_gateway.dependencies import (
    Clients,
    CurrentAccess,
    CurrentUserId,
    JsonBody,
    Principals,
)
from fabula_gateway.openapi import problem_responses

router = APIRouter(tags=["account"])

EXPORT_FORMAT = "fabula-export/1"


def _plain(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


# The largest page every list call accepts.
_PAGE = 100


async def _every_page(list_call, request: Message, items: str) -> list[Message]:
    """Every item of a paged list call, following `next_cursor` to the end."""
    found: list[Message] = []
    while True:
        page = await list_call(request)
        found.extend(getattr(page, items))
        if not page.next_cursor:
            return found
        request.cursor = page.next_cursor


async def _users_part(clients: ServiceClients, user_id: str) -> dict[str, Any]:
    reply = await clients.users.ExportUser(users_pb2.ExportUserRequest(user_id=user_id))
    return _plain(reply)


async def _stories_part(clients: ServiceClients, user_id: str) -> list[dict[str, Any]]:
    # A stream of every story with its segments: the longer deadline, one
    # bound on the whole stream.
    call = clients.stories.ExportStories(
        stories_pb2.ExportStoriesRequest(user_id=user_id), timeout=clients.generation_timeout
    )
    return [_plain(story) async for story in call]


async def _billing_part(clients: ServiceClients, user_id: str) -> dict[str, Any]:
    usage = await clients.billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    subscription = await clients.billing.GetSubscription(
        billing_pb2.GetSubscriptionRequest(user_id=user_id)
    )
    logs = await _every_page(
        clients.billing.ListUsageLogs,
        billing_pb2.ListUsageLogsRequest(user_id=user_id, limit=_PAGE),
        "logs",
    )
    invoices = await _every_page(
        clients.billing.ListInvoices,
        billing_pb2.ListInvoicesRequest(user_id=user_id, limit=_PAGE),
        "invoices",
    )
    return {
        "usage": _plain(usage),
        "subscription": _plain(subscription),
        "usage_logs": [_plain(log) for log in logs],
        "invoices": [_plain(invoice) for invoice in invoices],
    }


async def _conversations_part(clients: ServiceClients, user_id: str) -> list[dict[str, Any]]:
    call = clients.conversations.ExportConversations(
        conversations_pb2.ExportConversationsRequest(user_id=user_id),
        timeout=clients.generation_timeout,
    )
    return [_plain(conversation) async for conversation in call]


async def _projects_part(clients: ServiceClients, user_id: str) -> list[dict[str, Any]]:
    """Every project with every version of its narratives, texts included."""
    projects = await _every_page(
        clients.projects.ListProjects,
        projects_pb2.ListProjectsRequest(user_id=user_id, limit=_PAGE),
        "items",
    )
    exported = []
    for project in projects:
        listed = await _every_page(
            clients.projects.ListNarratives,
            projects_pb2.ListNarrativesRequest(user_id=user_id, project_id=project.id, limit=_PAGE),
            "items",
        )
        narratives = [
            _plain(await clients.projects.GetNarrative(
                projects_pb2.GetNarrativeRequest(user_id=user_id, narrative_id=narrative.id)
            ))
            for narrative in listed
        ]
        exported.append({**_plain(project), "narratives": narratives})
    return exported


async def _pictures_part(clients: ServiceClients, user_id: str) -> dict[str, Any]:
    drawings = await _every_page(
        clients.drawings.ListDrawings,
        pictures_pb2.ListDrawingsRequest(user_id=user_id, page_size=_PAGE),
        "drawings",
    )
    picture_stories = await _every_page(
        clients.drawings.ListPictureStories,
        pictures_pb2.ListPictureStoriesRequest(user_id=user_id, page_size=_PAGE),
        "picture_stories",
    )
    return {
        "drawings": [_plain(drawing) for drawing in drawings],
        "picture_stories": [_plain(story) for story in picture_stories],
    }


async def _media_part(clients: ServiceClients, user_id: str) -> list[dict[str, Any]]:
    """The photos' records (the files themselves are downloaded from
    /v1/photos/{id}; the URLs here expire)."""
    photos = await _every_page(
        clients.media.ListPhotos,
        media_pb2.ListPhotosRequest(user_id=user_id, page_size=_PAGE),
        "photos",
    )
    return [_plain(photo) for photo in photos]


# The document's members besides the header, in order, each a file of its
# own in the zip, and the function that asks the service for it.
EXPORT_PARTS = {
    "users": _users_part,
    "stories": _stories_part,
    "conversations": _conversations_part,
    "projects": _projects_part,
    "pictures": _pictures_part,
    "photos": _media_part,
    "billing": _billing_part,
}


async def collect_export(clients: ServiceClients, user_id: str) -> dict[str, Any]:
    """Every service's part, asked at once. Any service failing fails the
    whole export (a 503 from its status): a partial export would look complete."""
    try:
        async with asyncio.TaskGroup() as group:
            parts = {
                name: group.create_task(ask(clients, user_id))
                for name, ask in EXPORT_PARTS.items()
            }
    except ExceptionGroup as failed:
        # The first failure answers (the others were cancelled with it).
        raise failed.exceptions[0] from None
    return {
        "format": EXPORT_FORMAT,
        "exported_at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "user_id": user_id,
        **{name: part.result() for name, part in parts.items()},
    }


def zip_export(document: dict[str, Any]) -> bytes:
    """One JSON file per service, plus the document's header."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        header = {key: document[key] for key in ("format", "exported_at", "user_id")}
        archive.writestr("export.json", json.dumps(header, indent=2))
        for part in EXPORT_PARTS:
            archive.writestr(f"{part}.json", json.dumps(document[part], indent=2))
    return buffer.getvalue()


@router.get(
    "/v1/me/export",
    operation_id="export_account",
    response_model=AccountExport,
    summary="Export everything Fabula holds about you",
    description="One JSON document with a member per kind of data: the profile, identities "
    "and API keys (without secrets); every story with all its segments; every council "
    "conversation with its messages (those the free plan hides too); every project with "
    "every version of its narratives; drawings and picture stories; the photos' records; "
    "the plan, its usage, the ledger and invoices. `?format=zip` answers a zip archive "
    "with one JSON file per member instead. "
    "When a service cannot answer, the export fails with 503 rather than leave a part out.",
    responses={
        **problem_responses(401, 404, 422, 500, 503),
        200: {
            "content": {"application/zip": {}},
            "description": "The export (JSON, or a zip with `?format=zip`).",
        },
    },
)
async def export_account(
    user_id: CurrentUserId,
    clients: Clients,
    export_format: Annotated[
        Literal["json", "zip"],
        Query(alias="format", description="`json` (the default) or `zip`."),
    ] = "json",
) -> Response:
    document = await collect_export(clients, user_id)
    stamp = document["exported_at"][:10]
    if export_format == "zip":
        return Response(
            zip_export(document),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="fabula-export-{stamp}.zip"'},
        )
    return Response(
        json.dumps(document),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="fabula-export-{stamp}.json"'},
    )


@router.delete(
    "/v1/me",
    operation_id="delete_account",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete your account",
    description="Deletes the account and everything of it in every service: stories go, "
    "the usage ledger is kept anonymised for accounting. Needs the password, unless the "
    "access token was issued within the last few minutes (sign in again, then delete). "
    "Other services finish within seconds. The account's tokens and API keys stop working at "
    "once at this gateway; at other replicas, within their cache time (at most 30 seconds).",
    responses=problem_responses(
        401,
        404,
        413,
        415,
        422,
        500,
        503,
        s401="No valid access token, or the password is missing (type `unauthenticated`, "
        "detail naming `password`) or wrong.",
        s404="The account is already deleted.",
    ),
)
async def delete_account(
    access: CurrentAccess,
    clients: Clients,
    _json: JsonBody,
    principals: Principals,
    body: DeleteAccountRequest | None = None,
) -> Response:
    signed_in_at = Timestamp()
    signed_in_at.FromDatetime(access.issued_at)
    await clients.users.DeleteUser(
        users_pb2.DeleteUserRequest(
            user_id=access.user_id,
            password=(body.password or "") if body is not None else "",
            fresh_sign_in_at=signed_in_at,
        )
    )
    # Refused here at once; another gateway within its cache time.
    principals.forget_account(access.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
