"""Gateway fixtures: the real app in-process, against closed ports or fakes.

`client`: nothing listens at the service addresses, so every route that
reaches a backend answers 503; for everything the gateway decides on its own.
`api`: the backends are fakes of the services' gRPC contracts (fakes.py), for
the happy paths and what the gateway sends. The end-to-end tests drive it
against the real services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from fabula_common.testing import free_port
from fabula_common.tokens import issue_access_token
from fabula_gateway.app import create_app
from fabula_gateway.principals import Principal
from fabula_gateway.settings import GatewaySettings
from fastapi import FastAPI

from .fakes import FakeBackends, fake_backends

MAX_BODY_BYTES = 8192
# Different from each other, so a test can tell which deadline a call got.
GRPC_DEADLINE_SECONDS = 3.0
GENERATION_DEADLINE_SECONDS = 7.0
COUNCIL_DEADLINE_SECONDS = 11.0
USER_ID = "6f1c2a8e-3b7d-4c59-9e0a-1d2f3a4b5c6d"


def _settings(**overrides) -> GatewaySettings:
    closed = {
        name: f"127.0.0.1:{free_port()}" for name in ("users", "stories", "generation", "billing", "media")
    }
    values = {
        **{f"{name}_addr": address for name, address in closed.items()},
        "max_body_bytes": MAX_BODY_BYTES,
        "grpc_deadline_seconds": GRPC_DEADLINE_SECONDS,
        "generation_deadline_seconds": GENERATION_DEADLINE_SECONDS,
        "council_deadline_seconds": COUNCIL_DEADLINE_SECONDS,
        **overrides,
    }
    return GatewaySettings(**values)


@asynccontextmanager
async def _serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        # raise_app_exceptions=False: a 500 is an answer to assert on, as a
        # real server would send it.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
def make_settings() -> Callable[..., GatewaySettings]:
    """Settings with every backend address closed, plus overrides."""
    return _settings


@pytest.fixture
def serve() -> Callable[[FastAPI], AsyncIterator[httpx.AsyncClient]]:
    """Run an app's lifespan and yield a client talking to it in-process."""
    return _serve


@pytest.fixture
def settings() -> GatewaySettings:
    return _settings()


@pytest.fixture
async def client(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    # As if users had answered for USER_ID before it went away: the gateway
    # uses that answer while users is unreachable.
    app.state.principals.remember_user(Principal(USER_ID))
    async with _serve(app) as client:
        yield client


@pytest.fixture
def user_id() -> str:
    return USER_ID


@pytest.fixture
def auth(settings: GatewaySettings, user_id: str) -> dict[str, str]:
    """Headers carrying a valid access token."""
    token, _ = issue_access_token(settings, user_id)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def max_body_bytes() -> int:
    return MAX_BODY_BYTES


@pytest.fixture
async def backends() -> AsyncIterator[FakeBackends]:
    """Fakes of the users, stories and billing services (and every health check)."""
    async with fake_backends() as backends:
        yield backends


@pytest.fixture
async def api(backends: FakeBackends) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real app whose backends are the fakes."""
    addresses = {
        f"{name}_addr": backends.address for name in ("users", "stories", "generation", "billing", "media")
    }
    async with _serve(create_app(_settings(**addresses))) as client:
        yield client


@pytest.fixture
def problem() -> Callable[[httpx.Response, int], dict]:
    """Check that a response is a problem document of `status`; its body."""

    def check(response: httpx.Response, status: int) -> dict:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == status and body["type"].startswith("https://fabula.dev/problems/")
        return body

    return check
