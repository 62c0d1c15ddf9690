"""The `fabula` command's shared parts: the global options, the client built
from them (saved tokens, refreshed and written back), output as text or JSON,
and errors as one line with a meaningful exit code."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Annotated, Any

import typer
from fabula_client import (
    APIConnectionError,
    AuthenticationError,
    Fabula,
    FabulaError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ServiceUnavailable,
)
from fabula_client._core import DEFAULT_BASE_URL
from pydantic import BaseModel
from rich.console import Console

from fabula_cli.config import CredentialStore


class Exit(IntEnum):
    """Exit codes (README, "Terminal and Python client")."""

    OK = 0
    ERROR = 1
    USAGE = 2  # a bad command line, or a request the API found invalid (400/422)
    AUTH = 3  # not logged in, the login expired, or not allowed (401/403)
    NOT_FOUND = 4  # no such story, job, ... (404)
    LIMIT = 5  # the plan's quota or a rate limit (402/429)
    UNAVAILABLE = 6  # the API or a service cannot be reached (503, no connection)


_EXIT_FOR: list[tuple[type[FabulaError], Exit]] = [
    (InvalidRequest, Exit.USAGE),
    (AuthenticationError, Exit.AUTH),
    (PermissionDenied, Exit.AUTH),
    (NotFound, Exit.NOT_FOUND),
    (QuotaExceeded, Exit.LIMIT),
    (RateLimited, Exit.LIMIT),
    (ServiceUnavailable, Exit.UNAVAILABLE),
    (APIConnectionError, Exit.UNAVAILABLE),
]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def exit_code_for(error: FabulaError) -> Exit:
    return next((code for cls, code in _EXIT_FOR if isinstance(error, cls)), Exit.ERROR)


def fail(error: FabulaError) -> typer.Exit:
    """Print the error as one line on stderr; the Exit to raise."""
    line = error.line()
    if isinstance(error, AuthenticationError):
        line += " (run `fabula login`)"
    err.print(f"error: {line}", markup=False)
    return typer.Exit(exit_code_for(error))


@dataclass
class Session:
    api_url: str
    json: bool
    api_key: str | None
    store: CredentialStore = field(default_factory=CredentialStore)
    _client: Fabula | None = None

    @property
    def client(self) -> Fabula:
        if self._client is None:
            self._client = Fabula(
                self.api_url,
                api_key=self.api_key,
                tokens=None if self.api_key else self.store.tokens(self.api_url),
                on_tokens=lambda tokens: self.store.save(self.api_url, tokens),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def report(self, text: str, value: Any) -> None:
        """`text` for a person, or `value` as JSON with --json."""
        if self.json:
            self.emit(value)
        else:
            out.print(text)

    def emit(self, value: Any) -> None:
        """Machine output (--json): one JSON document on stdout."""
        sys.stdout.write(json.dumps(_plain(value), indent=2, default=str) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def session(ctx: typer.Context) -> Session:
    return ctx.find_root().obj


ApiUrl = Annotated[
    str,
    typer.Option("--api-url", envvar="FABULA_API_URL", help="The Fabula API.", show_default=True),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine output: JSON on stdout.")]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="FABULA_API_KEY", help="Use an API key instead of the login."),
]


def new_app(help: str) -> typer.Typer:
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, rich_markup_mode="rich")


__all__ = ["DEFAULT_BASE_URL", "Exit", "Session", "err", "fail", "new_app", "out", "session"]
