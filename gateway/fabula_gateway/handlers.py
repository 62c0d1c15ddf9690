"""Exception handlers: everything that goes wrong becomes a problem document.

Unexpected exceptions are answered (with a 500 problem) by
RequestContextMiddleware, which sits outside these handlers.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from fabula_gateway.problems import (
    UNAUTHENTICATED,
    VALIDATION_FAILED,
    WWW_AUTHENTICATE,
    FieldError,
    ProblemError,
    problem_for_rpc_error,
    problem_type_for_status,
)

log = logging.getLogger(__name__)

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return exc.to_response()


async def _rpc_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, grpc.aio.AioRpcError)
    problem = problem_for_rpc_error(exc)
    # What the client is not told (addresses, internal messages) goes to the log.
    level = logging.WARNING if problem.status >= 500 else logging.DEBUG
    log.log(
        level,
        "%s %s: backend answered %s: %s",
        request.method,
        request.url.path,
        exc.code().name,
        exc.details(),
    )
    return problem.to_response()


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [field_error(error) for error in exc.errors()]
    noun = "field is" if len(errors) == 1 else "fields are"
    return ProblemError(
        VALIDATION_FAILED, f"{len(errors)} {noun} not valid.", errors=errors
    ).to_response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    kind = problem_type_for_status(exc.status_code)
    headers = dict(exc.headers or {})
    if exc.status_code == UNAUTHENTICATED.status:
        headers.setdefault("WWW-Authenticate", WWW_AUTHENTICATE)
    # Starlette's details for routing errors are just the status phrase.
    routing_error = exc.status_code in (404, 405)
    detail = exc.detail if isinstance(exc.detail, str) and not routing_error else None
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed here."
        headers["Allow"] = ", ".join(allowed_methods(request))
    return ProblemError(kind, detail, headers=headers).to_response()


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at this path. Starlette names only the
    first matching route's, so each method is tried against the routing table."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


def field_error(error: dict[str, Any]) -> FieldError:
    """A pydantic/FastAPI error as an RFC 9457-style entry of `errors`.

    The offending input is never echoed: it may be a password.
    """
    code = str(error.get("type", "invalid"))
    detail = str(error.get("msg", "Invalid value"))
    source, *path = error.get("loc") or ("body",)
    if code == "json_invalid":
        reason = (error.get("ctx") or {}).get("error")
        return FieldError(
            code=code, pointer="#", detail=f"Invalid JSON: {reason}" if reason else "Invalid JSON."
        )
    if source == "body":
        return FieldError(code=code, detail=detail, pointer=json_pointer(path))
    if source == "header":
        return FieldError(code=code, detail=detail, header=str(path[0]) if path else "")
    return FieldError(code=code, detail=detail, parameter=str(path[0]) if path else str(source))


def json_pointer(path: list[Any]) -> str:
    """RFC 6901 pointer, in its URI fragment form as RFC 9457 uses it."""
    return "#" + "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem)
    app.add_exception_handler(grpc.aio.AioRpcError, _rpc_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
