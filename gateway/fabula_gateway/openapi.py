"""OpenAPI document: description, error responses as problem+json, and a
guard that every route names its operationId explicitly."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from fabula_gateway.problems import PROBLEM_MEDIA_TYPE, Problem, QuotaProblem

API_TITLE = "Fabula API"
API_VERSION = "1.0.0"
API_DESCRIPTION = """\
Write stories with a model, one segment at a time.

**Authentication.** Register or log in to get an `access_token` (short-lived)
and a `refresh_token` (single use). Send `Authorization: Bearer <access_token>`;
when it expires, exchange the refresh token at `/v1/auth/refresh`.
Scripts can use an API key (`/v1/me/api-keys`) the same way:
`Authorization: Bearer fab_...`; a read-only key may only GET (else 403,
type `insufficient-scope`).

**Who wrote the text.** Every segment carries `generated_by: {provider, model,
is_language_model}`. The built-in `offline` provider (used when no model
provider is configured) assembles text from templates, so
it is not a language model: `is_language_model` is `false` for its segments.

**Streaming.** `POST /v1/stories/{story_id}/continue` with
`Accept: text/event-stream` answers with Server-Sent Events: `event: token`
(data `{"text": ...}`) per piece of text, then exactly one `event: segment`
(data: the stored segment) or `event: error` (data: a problem document).
Errors found before the first piece of text (unknown story, story complete,
quota used up, service down) are ordinary HTTP error responses.

**Errors.** Every error is `application/problem+json` (RFC 9457) with a stable
`type` URI (e.g. `https://fabula.dev/problems/quota-exceeded`), `title`,
`status`, `detail` and `request_id`; validation problems list the invalid
fields in `errors`. Every response carries `X-Request-ID` (yours, if you sent
a sane one).
"""

TAGS = [
    {"name": "auth", "description": "Accounts and tokens."},
    {"name": "api-keys", "description": "Keys for scripts, instead of signing in."},
    {"name": "stories", "description": "Stories and their segments."},
    {"name": "suggestions", "description": "Ideas for new stories."},
    {"name": "projects", "description": "Long-form work: projects and their versioned narratives."},
    {"name": "jobs", "description": "Generation jobs: briefs written stage by stage, watched live."},
    {"name": "conversations", "description": "Council conversations: several models answer, "
     "review each other, and a chairman decides."},
    {"name": "photos", "description": "Photos uploaded straight to storage, checked, "
     "stripped of metadata and given thumbnails."},
    {"name": "usage", "description": "The plan and what this period has used of it."},
    {"name": "billing", "description": "Plans bought through Stripe, invoices, Stripe's webhooks."},
    {"name": "admin", "description": "Administration of accounts (superusers only)."},
    {"name": "account", "description": "Export your data, delete your account."},
    {"name": "health", "description": "Probes for orchestrators and load balancers."},
]

_DESCRIPTIONS = {
    400: "The request is malformed (e.g. a webhook signature that does not verify).",
    401: "Missing, malformed, expired or tampered access token.",
    402: "The plan's quota for this period is used up; the problem names the `plan`, "
    "the `quota` reached, its `limit` and when it `resets_at`.",
    403: "Not allowed: an API key without the scope (type `insufficient-scope`), or not "
    "an administrator (type `forbidden`).",
    404: "No such resource (or it belongs to someone else).",
    409: "The resource's state forbids this.",
    413: "The request body is too large.",
    415: "The request body is not JSON.",
    422: "The request is not valid; `errors` lists the invalid fields.",
    429: "Too many attempts; retry after `Retry-After` seconds.",
    500: "Unexpected error.",
    503: "A backend service is unavailable; retry after `Retry-After` seconds.",
}


def problem_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """Error responses of a route, documented as problem documents.

    Descriptions may be overridden per route as `s409="..."`.
    """
    return {
        status: {
            "model": QuotaProblem if status == 402 else Problem,
            "description": descriptions.get(f"s{status}", _DESCRIPTIONS[status]),
        }
        for status in statuses
    }


def require_operation_id(route: APIRoute) -> str:
    """generate_unique_id_function that refuses to invent one: operationIds are
    a public contract (client generators name methods after them)."""
    raise RuntimeError(f"route {route.path} {route.methods} needs an explicit operation_id")


def install_openapi(app: FastAPI) -> None:
    """Error responses are served as application/problem+json; say so."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    _problem_json(operation["responses"])
            # Only FastAPI's own (now removed) 422 responses used these.
            components = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_json(responses: dict[str, Any]) -> None:
    for status in list(responses):
        content = responses[status].get("content", {})
        schema_ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
        if schema_ref.endswith("/HTTPValidationError"):
            # FastAPI's automatic 422 for routes whose parameters cannot fail
            # validation (a story id is a 404 when malformed).
            del responses[status]
        elif status[0] in "45" and "application/json" in content:
            content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
