"""OpenAPI document: description, error responses as problem+json with an
example of each problem type a route names, example answers, and a guard
that every route names its operationId explicitly.

Routes get all of this by declaring `responses=problem_responses(...)` and
models with examples; nothing here is per route.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from fabula_gateway import problems
from fabula_gateway.problems import (
    PROBLEM_MEDIA_TYPE,
    Problem,
    ProblemType,
    QuotaProblem,
    problem_type_for_status,
)

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
`POST /v1/stories` streams a new story's opening the same way, ending with
one `event: story` (data: the new story) instead.
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

# Every kind of problem the gateway answers with, in the order problems.py declares them.
PROBLEM_TYPES: tuple[ProblemType, ...] = tuple(
    value for value in vars(problems).values() if isinstance(value, ProblemType)
)
_EXAMPLE_REQUEST_ID = "3f9c0e6a5b3d4f7e9a1b2c3d4e5f6a7b"
# Problems whose documents carry more than the standard members.
_EXAMPLE_EXTENSIONS: dict[str, dict[str, Any]] = {
    problems.VALIDATION_FAILED.slug: {
        "errors": [
            {
                "pointer": "#/password",
                "detail": "String should have at least 8 characters",
                "code": "string_too_short",
            }
        ]
    },
    problems.QUOTA_EXCEEDED.slug: {
        "plan": "free",
        "quota": "generations",
        "limit": 5,
        "resets_at": "2025-02-01T00:00:00Z",
    },
}


def problem_example(kind: ProblemType) -> dict[str, Any]:
    """The problem document a client gets for `kind`, as an example."""
    return {
        "type": kind.uri,
        "title": kind.title,
        "status": kind.status,
        "detail": kind.default_detail,
        "request_id": _EXAMPLE_REQUEST_ID,
        **_EXAMPLE_EXTENSIONS.get(kind.slug, {}),
    }


def _problem_examples(status: int, description: str) -> dict[str, Any]:
    """An example of each problem type the description names (as `slug`), else
    of the status's general type."""
    named = [
        kind
        for kind in PROBLEM_TYPES
        if kind.status == status and kind.slug and f"`{kind.slug}`" in description
    ]
    general = problem_type_for_status(status)
    # A request may always be invalid in ways no description needs to name.
    kinds = named + [general] if not named or status == 422 else named
    return {
        kind.slug or str(status): {"summary": kind.title, "value": problem_example(kind)}
        for kind in kinds
    }


def _problem_types_table() -> str:
    rows = [
        f"| `{kind.slug}` | {kind.status} | {kind.title} | {kind.default_detail} |"
        for kind in PROBLEM_TYPES
        if kind.slug
    ]
    return "\n".join(
        [
            "**Problem types.** The `type` of a problem is "
            f"`{problems.PROBLEM_TYPE_BASE}<slug>`:",
            "",
            "| slug | status | title | e.g. |",
            "| --- | --- | --- | --- |",
            *rows,
        ]
    )


_DESCRIPTIONS = {
    400: "The request is malformed: a body that is not UTF-8, or a webhook signature that "
    "does not verify.",
    408: "The request body was not received in time.",
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
    431: "The request line and headers are too large.",
    500: "Unexpected error.",
    503: "A backend service is unavailable; retry after `Retry-After` seconds.",
}


def problem_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """Error responses of a route, documented as problem documents.

    Descriptions may be overridden per route as `s409="..."`.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = descriptions.get(f"s{status}", _DESCRIPTIONS[status])
        responses[status] = {
            "model": QuotaProblem if status == 402 else Problem,
            "description": description,
            # Moved to application/problem+json with the schema by install_openapi.
            "content": {
                "application/json": {"examples": _problem_examples(status, description)}
            },
        }
    return responses


def require_operation_id(route: APIRoute) -> str:
    """generate_unique_id_function that refuses to invent one: operationIds are
    a public contract (client generators name methods after them)."""
    raise RuntimeError(f"route {route.path} {route.methods} needs an explicit operation_id")


def install_openapi(app: FastAPI) -> None:
    """Error responses are served as application/problem+json; say so. JSON
    answers without an example of their own get one composed of their parts'."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=f"{app.description}\n{_problem_types_table()}\n",
                routes=app.routes,
                tags=app.openapi_tags,
            )
            components = schema.get("components", {}).get("schemas", {})
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    _shared_problems(operation)
                    _problem_json(operation["responses"])
                    _example_answers(operation["responses"], components)
            # Only FastAPI's own (now removed) 422 responses used these.
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# Answers any request may get from the gateway itself (server.py, middleware.py).
_EVERY_OPERATION = (431, 500, 503)
# ... and any request with a body: unreadable (not UTF-8), too slow, too large, not JSON.
_EVERY_BODY = (400, 408, 413, 415)
_CONSTRAINTS = frozenset(
    {"maxLength", "minLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
     "exclusiveMaximum", "enum", "maxItems", "minItems", "format"}
)


def _shared_problems(operation: dict[str, Any]) -> None:
    """The problems no route needs to declare: those of the gateway's own
    limits, and a 422 wherever a parameter can be invalid."""
    responses = operation["responses"]
    statuses = [*_EVERY_OPERATION, *(_EVERY_BODY if "requestBody" in operation else ())]
    validation = responses.get("422", {}).get("content", {}).get("application/json", {})
    if validation.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        # FastAPI's own 422: kept (as a problem) only when a parameter can
        # fail validation; a malformed story id, say, is a 404.
        del responses["422"]
        if "requestBody" in operation or any(
            _CONSTRAINTS & _constraint_keys(p.get("schema", {}))
            for p in operation.get("parameters", [])
        ):
            statuses.append(422)
    for status, response in problem_responses(*statuses).items():
        if str(status) in responses:
            continue
        content = response["content"]["application/json"]
        responses[str(status)] = {
            "description": response["description"],
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{response['model'].__name__}"},
                    **content,
                }
            },
        }


def _constraint_keys(schema: dict[str, Any]) -> set[str]:
    keys = set(schema)
    for option in schema.get("anyOf", []):
        keys |= set(option)
    return keys


def _problem_json(responses: dict[str, Any]) -> None:
    for status in list(responses):
        content = responses[status].get("content", {})
        if status[0] in "45" and "application/json" in content:
            content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")


def _example_answers(responses: dict[str, Any], components: dict[str, Any]) -> None:
    for status, response in responses.items():
        if not status.startswith("2"):
            continue
        media = response.get("content", {}).get("application/json")
        if media is None or "example" in media or "examples" in media:
            continue
        example = example_of(media.get("schema", {}), components)
        if example is not None:
            media["example"] = example


# Values for a string of a format when no example says better.
_FORMAT_EXAMPLES = {
    "date-time": "2025-01-01T12:00:00Z",
    "date": "2025-01-01",
    "uuid": "6a1f0c2e-9d8b-4e7a-8c6d-5b4a3f2e1d0c",
    "email": "ada@example.com",
    "uri": "https://example.com/",
    "binary": None,
}
_MAX_DEPTH = 8


def example_of(
    schema: dict[str, Any], components: dict[str, Any], depth: int = 0, name: str = ""
) -> Any:
    """An example value for `schema` (of a member called `name`): its own (or
    its component's) example when it has one, else one composed of its
    properties' examples."""
    if depth > _MAX_DEPTH:
        return None
    if "$ref" in schema:
        return example_of(
            components[schema["$ref"].rsplit("/", 1)[1]], components, depth + 1, name
        )
    if schema.get("examples"):
        return copy.deepcopy(schema["examples"][0])
    for key in ("example", "default", "const"):
        if key in schema and schema[key] is not None:
            return copy.deepcopy(schema[key])
    if schema.get("enum"):
        return schema["enum"][0]
    for combined in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(combined, []) if o.get("type") != "null"]
        if options:
            return example_of(options[0], components, depth + 1, name)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {
            member_name: example_of(member, components, depth + 1, member_name)
            for member_name, member in schema.get("properties", {}).items()
        }
    if kind == "array":
        item = example_of(schema.get("items", {}), components, depth + 1)
        return [] if item is None else [item]
    if kind == "string":
        if schema.get("format") in _FORMAT_EXAMPLES:
            return _FORMAT_EXAMPLES[schema["format"]]
        if name == "id" or name.endswith("_id"):
            return _FORMAT_EXAMPLES["uuid"]
        if name == "url" or name.endswith("_url"):
            return _FORMAT_EXAMPLES["uri"]
        return name.replace("_", " ") or "string"
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    return None
