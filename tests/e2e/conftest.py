"""End-to-end harness: the real launcher (`make run`'s), real processes, real
Postgres and NATS, driven over HTTP.

Each stack gets its own database, NATS stream and subject prefix and free
ports, so it never touches what `make run` uses; all are removed afterwards.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fabula_common.testing import PrivateNats, PrivatePostgres, free_port
from fabula_devtools import stack as fabula_stack
from fabula_devtools.stack import TEST_STACK, Stack, stack_environment, start_stack, stop_stack


@pytest.fixture(scope="session", autouse=True)
def stacks_postgres() -> Iterator[str]:
    """A PostgreSQL cluster of the e2e stacks' own (one per test worker).
    The shared server allows 100 connections; a stack holds about 20 idle
    and more when busy, so two workers' stacks beside the service tests
    would run it out. Without the PostgreSQL binaries the shared one is used."""
    try:
        server = PrivatePostgres(settings={"max_connections": "400"})
    except FileNotFoundError:
        yield fabula_stack.ADMIN_URL
        return
    try:
        server.start()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fabula_stack, "ADMIN_URL", server.admin_url)
            yield server.admin_url
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def stack(stacks_postgres, tmp_path_factory) -> Iterator[Stack]:
    """The whole platform with the offline provider, shared by the e2e tests."""
    # Every request's access line: tests follow a request id through the logs.
    env = stack_environment(**TEST_STACK, ACCESS_LOG_LEVEL="DEBUG")
    running = start_stack(env, tmp_path_factory.mktemp("stack") / "fabula.log")
    yield running
    code = stop_stack(running)
    assert code == 0, running.log_tail()
    assert_no_orphans(running)


def assert_no_orphans(stack: Stack) -> None:
    """Every process the launcher started is gone once it has exited."""
    assert stack.children, "the launcher's children were not found"
    alive = [name for name, pid in stack.children.items() if Path(f"/proc/{pid}").exists()
             and "Z" not in (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:1] or ["Z"])]
    assert not alive, f"still running after the launcher exited: {alive}"


@pytest.fixture
def private_nats(tmp_path) -> Iterator[PrivateNats]:
    if not shutil.which("nats-server"):
        pytest.skip("nats-server binary not installed")
    server = PrivateNats(tmp_path / "jetstream")
    server.start()
    yield server
    server.stop()


@dataclass
class Writer:
    email: str
    password: str
    tokens: dict

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}


class Api:
    """A REST client for one stack, with the steps most tests share."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = stack.client()

    def register(self, email: str | None = None, password: str = "correct horse battery") -> Writer:
        email = email or f"writer-{uuid.uuid4().hex[:10]}@example.com"
        response = self.http.post(
            "/v1/auth/register", json={"email": email, "password": password, "full_name": "Ada Writer"}
        )
        assert response.status_code == 201, response.text
        return Writer(email, password, response.json())

    def create_story(self, writer: Writer, **body) -> httpx.Response:
        return self.http.post("/v1/stories", json={"genre": "fantasy", **body}, headers=writer.headers)

    def usage(self, writer: Writer) -> dict:
        response = self.http.get("/v1/usage", headers=writer.headers)
        assert response.status_code == 200, response.text
        return response.json()

    @staticmethod
    def wait_for(predicate, timeout: float = 20, interval: float = 0.1):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(interval)


@pytest.fixture
def api(stack: Stack) -> Iterator[Api]:
    client = Api(stack)
    yield client
    client.http.close()


def assert_problem(response: httpx.Response, status: int, type_suffix: str | None = None) -> dict:
    """RFC 9457 problem document with the given status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"] and "type" in problem and "detail" in problem
    if type_suffix:
        assert problem["type"].endswith(type_suffix), problem
    return problem


@pytest.fixture
def problem():
    return assert_problem


@pytest.fixture
def start_private_stack(tmp_path) -> Iterator:
    """Start a stack of one's own (other settings, a private NATS); stopped
    and checked for orphans at the end of the test."""
    started: list[Stack] = []

    def start(**overrides: str) -> Api:
        env = stack_environment(**{**TEST_STACK, **overrides})
        running = start_stack(env, tmp_path / f"stack{len(started)}.log")
        started.append(running)
        return Api(running)

    yield start
    for running in started:
        assert stop_stack(running) == 0, running.log_tail()
        assert_no_orphans(running)


@pytest.fixture
def launcher_env():
    return stack_environment
