"""The gateway over HTTP, with no backend running: errors, auth, limits, probes.

The happy paths, against fakes of the services, are in test_routes.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time

import grpc
import httpx
import jwt
import pytest
from fabula_common.testing import free_port
from fabula_common.tokens import ALGORITHM, AUDIENCE, LEEWAY_SECONDS, issue_access_token
from fabula_gateway.app import create_app
from fabula_gateway.principals import Principal
from fabula_gateway.settings import GatewaySettings
from fabula_gateway.stories.streaming import wants_event_stream
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

PROBLEM_JSON = "application/problem+json"
BASE = "https://fabula.dev/problems/"
SERVICES = {"users", "stories", "generation", "billing", "media"}
STORY_ID = "6a1f0c2e-9d8b-4e7a-8c6d-5b4a3f2e1d0c"


def assert_problem(response, status: int, problem_type: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == BASE + problem_type
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# ------------------------------------------------------------ framework errors


async def test_unknown_route_is_a_404_problem(client):
    assert_problem(await client.get("/v1/nothing-here"), 404, "not-found")


async def test_wrong_method_is_a_405_problem_with_allow(client):
    response = await client.put("/v1/stories")

    assert_problem(response, 405, "method-not-allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


async def test_validation_problem_lists_each_invalid_field_without_echoing_it(client):
    response = await client.post(
        "/v1/auth/register",
        json={"email": "not-an-email", "password": "hunter2", "nickname": "x"},
    )

    body = assert_problem(response, 422, "validation-error")
    by_pointer = {error["pointer"]: error for error in body["errors"]}
    assert set(by_pointer) == {"#/email", "#/password", "#/nickname"}
    assert by_pointer["#/password"]["code"] == "string_too_short"
    assert by_pointer["#/nickname"]["code"] == "extra_forbidden"
    assert "hunter2" not in response.text


async def test_story_limits_are_enforced_before_any_backend_is_asked(client, auth):
    response = await client.post(
        "/v1/stories",
        headers=auth,
        json={
            "genre": "   ",
            "title": "t" * 201,
            "characters": ["Mara", ""],
            "opening_line": "o" * 1001,
        },
    )

    body = assert_problem(response, 422, "validation-error")
    assert {error["pointer"] for error in body["errors"]} == {
        "#/genre",
        "#/title",
        "#/characters/1",
        "#/opening_line",
    }


async def test_too_many_characters_and_too_long_direction_are_rejected(client, auth):
    too_many = await client.post(
        "/v1/stories", headers=auth, json={"genre": "noir", "characters": ["x"] * 21}
    )
    too_long = await client.post(
        f"/v1/stories/{STORY_ID}/continue", headers=auth, json={"direction": "d" * 4001}
    )

    assert (
        assert_problem(too_many, 422, "validation-error")["errors"][0]["pointer"] == "#/characters"
    )
    assert (
        assert_problem(too_long, 422, "validation-error")["errors"][0]["pointer"] == "#/direction"
    )


@pytest.mark.parametrize(
    ("path", "body", "pointer"),
    [
        (
            "/v1/auth/register",
            {"email": "ada@example.com", "password": "correct horse", "full_name": "A\x00da"},
            "#/full_name",
        ),
        ("/v1/stories", {"genre": "no\x00ir"}, "#/genre"),
        ("/v1/stories", {"genre": "noir", "title": "t\x00"}, "#/title"),
        ("/v1/stories", {"genre": "noir", "characters": ["Mara", "x\x00"]}, "#/characters/1"),
        ("/v1/stories", {"genre": "noir", "opening_line": "o\x00"}, "#/opening_line"),
        (f"/v1/stories/{STORY_ID}/continue", {"direction": "d\x00"}, "#/direction"),
        (f"/v1/stories/{STORY_ID}/end", {"direction": "d\x00"}, "#/direction"),
    ],
)
async def test_nul_characters_are_a_validation_problem_naming_the_field(
    client, auth, path, body, pointer
):
    # Postgres text cannot store NUL: it must never reach a service's database.
    response = await client.post(path, headers=auth, json=body)

    body = assert_problem(response, 422, "validation-error")
    assert [error["pointer"] for error in body["errors"]] == [pointer]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("limit=0", "limit"), ("limit=101", "limit"), (f"cursor={'c' * 513}", "cursor")],
)
async def test_query_parameters_are_validated(client, auth, query, parameter):
    response = await client.get(f"/v1/stories?{query}", headers=auth)

    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["parameter"] == parameter


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        (f"/v1/stories/{STORY_ID}?view=everything", "view"),
        (f"/v1/stories/{STORY_ID}/segments?after=-1", "after"),
        # Positions are int32 in the contract: larger is refused, not a 500.
        (f"/v1/stories/{STORY_ID}/segments?after={2**31}", "after"),
        (f"/v1/stories/{STORY_ID}/segments?after=first", "after"),
        (f"/v1/stories/{STORY_ID}/segments?limit=0", "limit"),
        (f"/v1/stories/{STORY_ID}/segments?limit=101", "limit"),
    ],
)
async def test_story_reading_parameters_are_validated_before_any_backend_is_asked(
    client, auth, path, parameter
):
    response = await client.get(path, headers=auth)

    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["parameter"] == parameter


async def test_malformed_json_is_a_validation_problem(client):
    response = await client.post(
        "/v1/auth/login", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )

    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["code"] == "json_invalid"


async def test_non_json_body_is_a_415_problem(client):
    response = await client.post(
        "/v1/auth/login",
        content=b"email=a@example.com&password=secret123",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert_problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_over_the_limit_is_a_413_problem(client, max_body_bytes, chunked):
    payload = b'{"email": "a@example.com", "password": "' + b"p" * max_body_bytes + b'"}'

    async def chunks():
        for start in range(0, len(payload), 256):
            yield payload[start : start + 256]

    response = await client.post(
        "/v1/auth/login",
        content=chunks() if chunked else payload,
        headers={"Content-Type": "application/json"},
    )

    assert_problem(response, 413, "content-too-large")


async def test_body_under_the_limit_passes_the_limit(client, max_body_bytes):
    # Gets as far as validation: the limit let it through intact.
    payload = b'{"email": "a@example.com", "password": "' + b"p" * (max_body_bytes - 100) + b'"}'

    async def chunks():
        for start in range(0, len(payload), 100):
            yield payload[start : start + 100]

    response = await client.post(
        "/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
    )

    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["pointer"] == "#/password"


# ------------------------------------------------------------ authentication


def assert_unauthenticated(response) -> dict:
    body = assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    return body


async def test_missing_token_is_a_401_problem(client):
    assert_unauthenticated(await client.get("/v1/me"))


@pytest.mark.parametrize(
    "authorization", ["Bearer not-a-jwt", "Bearer ", "Basic dXNlcjpwYXNz", "eyJhbGciOi"]
)
async def test_malformed_token_is_a_401_problem(client, authorization):
    response = await client.get("/v1/stories", headers={"Authorization": authorization})

    assert_unauthenticated(response)


async def test_expired_token_is_a_401_problem(client, settings, user_id):
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    token = jwt.encode(
        {
            "sub": user_id,
            "iss": settings.jwt_issuer,
            "aud": AUDIENCE,
            "iat": issued,
            "nbf": issued,
            "exp": issued + dt.timedelta(minutes=15),
            "typ": "access",
        },
        settings.jwt_secret.get_secret_value(),
        algorithm=ALGORITHM,
    )

    response = await client.get("/v1/usage", headers={"Authorization": f"Bearer {token}"})

    body = assert_unauthenticated(response)
    assert "expired" in body["detail"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_token_accepted_before_stops_working_when_it_expires(client, settings, user_id):
    """Valid tokens are remembered (not verified again on every request), but
    never past their expiry (and its leeway)."""
    expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=2)
    token = jwt.encode(
        {
            "sub": user_id,
            "iss": settings.jwt_issuer,
            "aud": AUDIENCE,
            "iat": expires - dt.timedelta(minutes=15),
            "exp": expires,
            "typ": "access",
        },
        settings.jwt_secret.get_secret_value(),
        algorithm=ALGORITHM,
    )
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(2):  # accepted: on to the users service, which is not running here
        assert (await client.get("/v1/me", headers=headers)).status_code == 503

    leeway = dt.timedelta(seconds=LEEWAY_SECONDS)
    past_expiry = (expires + leeway - dt.datetime.now(dt.UTC)).total_seconds() + 0.1
    await asyncio.sleep(past_expiry)

    body = assert_unauthenticated(await client.get("/v1/me", headers=headers))
    assert "expired" in body["detail"]


async def test_token_signed_with_another_secret_is_a_401_problem(client, make_settings, user_id):
    forged, _ = issue_access_token(make_settings(jwt_secret="someone-elses-secret-" * 2), user_id)

    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})

    assert_unauthenticated(response)


async def test_tampered_token_is_a_401_problem(client, auth):
    header, payload, signature = auth["Authorization"].removeprefix("Bearer ").split(".")
    tampered = ".".join(
        [header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")]
    )

    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {tampered}"})

    assert_unauthenticated(response)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/stories", {"genre": ""}),
        ("GET", "/v1/stories/not-a-uuid", None),
        ("GET", f"/v1/stories/{STORY_ID}/segments?limit=0", None),
        ("POST", f"/v1/stories/{STORY_ID}/continue", {"direction": "d" * 5000}),
    ],
)
async def test_authentication_comes_before_everything_else(client, method, path, body):
    # An anonymous caller learns nothing: not which ids exist, not the rules.
    assert_unauthenticated(await client.request(method, path, json=body))


# ------------------------------------------------------------ story ids


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/stories/not-a-uuid"),
        ("GET", "/v1/stories/not-a-uuid/segments"),
        ("DELETE", "/v1/stories/123"),
        ("POST", "/v1/stories/..%2F..%2Fetc/continue"),
        ("POST", "/v1/stories/x/end"),
    ],
)
async def test_story_id_that_is_not_a_uuid_is_a_404_problem(client, auth, method, path):
    response = await client.request(method, path, headers=auth)

    assert_problem(response, 404, "not-found")


# ------------------------------------------------------------ backends down


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("GET", "/v1/stories", None, {}),
        ("GET", f"/v1/stories/{STORY_ID}", None, {}),
        ("GET", f"/v1/stories/{STORY_ID}?view=basic", None, {}),
        ("GET", f"/v1/stories/{STORY_ID}/segments?after=20&limit=20", None, {}),
        ("POST", "/v1/stories", {"genre": "noir"}, {}),
        ("POST", f"/v1/stories/{STORY_ID}/continue", None, {}),
        # Before the first event arrives nothing is sent: a real 503, not a 200 stream.
        (
            "POST",
            f"/v1/stories/{STORY_ID}/continue",
            {"direction": "rain"},
            {"Accept": "text/event-stream"},
        ),
        ("POST", f"/v1/stories/{STORY_ID}/end", None, {}),
        ("DELETE", f"/v1/stories/{STORY_ID}", None, {}),
        ("GET", "/v1/usage", None, {}),
        ("GET", "/v1/me", None, {}),
        ("POST", "/v1/auth/login", {"email": "ada@example.com", "password": "correct horse"}, {}),
    ],
)
async def test_backend_down_is_a_quick_503_problem(client, auth, method, path, body, headers):
    started = time.monotonic()
    response = await client.request(method, path, json=body, headers={**auth, **headers})

    assert_problem(response, 503, "service-unavailable")
    assert int(response.headers["retry-after"]) > 0
    assert "127.0.0.1" not in response.text
    assert time.monotonic() - started < 2


# ------------------------------------------------------------ probes


async def test_healthz_answers_without_backends(client):
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_503_only_when_no_service_is_serving(client):
    started = time.monotonic()
    response = await client.get("/readyz")

    body = assert_problem(response, 503, "not-ready")
    assert time.monotonic() - started < 2
    assert all(name in body["detail"] for name in SERVICES)
    assert body["services"] == {name: "unreachable" for name in SERVICES}
    assert int(response.headers["retry-after"]) > 0


@pytest.fixture
async def health_servers():
    """Standard grpc.health.v1 servers (no Fabula code) standing in for the four
    processes' health endpoints; tests set their status."""
    servers, servicers, addresses = [], {}, {}
    for name in sorted(SERVICES):
        server = grpc.aio.server()
        servicer = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        addresses[name] = f"127.0.0.1:{free_port()}"
        server.add_insecure_port(addresses[name])
        await server.start()
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        servers.append(server)
        servicers[name] = servicer
    yield addresses, servicers
    for server in servers:
        await server.stop(None)


@pytest.fixture
def silent_address():
    """A port that accepts TCP connections and never says a word: a hung
    process, or something that is not a gRPC server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


async def test_readyz_stays_200_but_degraded_while_one_service_is_down(
    health_servers, make_settings, serve
):
    addresses, servicers = health_servers
    app = create_app(
        make_settings(**{f"{name}_addr": address for name, address in addresses.items()})
    )

    async with serve(app) as client:
        ready = await client.get("/readyz")
        await servicers["billing"].set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        degraded = await client.get("/readyz")

    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "services": {name: "serving" for name in SERVICES},
        "unavailable": [],
        "dependencies": {name: {} for name in SERVICES},
    }
    # Still in the load balancer: only billing's routes fail.
    assert degraded.status_code == 200
    body = degraded.json()
    assert body["status"] == "degraded" and body["unavailable"] == ["billing"]
    assert body["services"] == {**{name: "serving" for name in SERVICES}, "billing": "not_serving"}


async def test_readyz_shows_each_services_dependencies(health_servers, make_settings, serve):
    """What fabula_common.health publishes (`<service>/postgres`, `<service>/nats`)
    shows per backend; a service down for its database is not serving, one
    reporting NATS down still serves."""
    addresses, servicers = health_servers
    for name, servicer in servicers.items():
        await servicer.set(f"{name}/postgres", health_pb2.HealthCheckResponse.SERVING)
        if name != "stories":
            await servicer.set(f"{name}/nats", health_pb2.HealthCheckResponse.NOT_SERVING)
    await servicers["users"].set("users/postgres", health_pb2.HealthCheckResponse.NOT_SERVING)
    await servicers["users"].set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    app = create_app(
        make_settings(**{f"{name}_addr": address for name, address in addresses.items()})
    )

    async with serve(app) as client:
        response = await client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["unavailable"] == ["users"]
    assert body["dependencies"] == {
        "users": {"postgres": "down", "nats": "down"},
        "stories": {"postgres": "up"},
        "generation": {"postgres": "up", "nats": "down"},
        "billing": {"postgres": "up", "nats": "down"},
        "media": {"postgres": "up", "nats": "down"},
    }


async def test_readyz_answers_within_its_timeout_when_a_service_never_answers(
    health_servers, silent_address, make_settings, serve
):
    addresses, _ = health_servers
    addresses = {**addresses, "billing": silent_address}
    # The silent service would hold the probe forever, or for the calls'
    # deadline: readiness gives up after its own, much shorter, timeout.
    app = create_app(
        make_settings(
            readiness_timeout_seconds=0.5,
            grpc_deadline_seconds=60.0,
            **{f"{name}_addr": address for name, address in addresses.items()},
        )
    )

    async with serve(app) as client:
        started = time.monotonic()
        response = await client.get("/readyz")
        elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json()["unavailable"] == ["billing"]
    assert response.json()["services"]["billing"] == "unreachable"
    assert response.json()["dependencies"]["billing"] == {}
    # Margin for a loaded CI machine (2.1 s seen there with a 1 s timeout),
    # still far below the 60 s deadline.
    assert elapsed < 10


@pytest.mark.parametrize("billing", ["closed", "silent"])
async def test_a_dead_backend_fails_its_own_routes_fast_and_only_those(
    billing, health_servers, silent_address, make_settings, serve, user_id
):
    """Billing down (its port closed, or open and mute) costs /v1/usage a
    503 well within the call's 10 s deadline; the other services still
    answer the gateway."""
    addresses, _ = health_servers
    addresses = {
        **addresses,
        "billing": silent_address if billing == "silent" else f"127.0.0.1:{free_port()}",
    }
    settings = make_settings(
        grpc_deadline_seconds=10.0,
        **{f"{name}_addr": address for name, address in addresses.items()},
    )
    token, _ = issue_access_token(settings, user_id)
    app = create_app(settings)
    # Users here serves health only: its answer for the account is known.
    app.state.principals.remember_user(Principal(user_id))

    async with serve(app) as client:
        timings = []
        for _ in range(2):
            started = time.monotonic()
            usage = await client.get("/v1/usage", headers={"Authorization": f"Bearer {token}"})
            timings.append(time.monotonic() - started)
            assert_problem(usage, 503, "service-unavailable")
            assert int(usage.headers["retry-after"]) > 0
        ready = await client.get("/readyz")

    # The first call waits at most for one connection attempt; later ones not at all.
    assert timings[0] < 2.5 and timings[1] < 0.5, timings
    assert ready.status_code == 200 and ready.json()["unavailable"] == ["billing"]


# ------------------------------------------------------------ request id


async def test_sane_request_id_is_echoed_and_used_in_problems(client):
    response = await client.get("/v1/me", headers={"X-Request-ID": "client-42.retry_1"})

    assert response.headers["x-request-id"] == "client-42.retry_1"
    assert response.json()["request_id"] == "client-42.retry_1"


@pytest.mark.parametrize("sent", [None, "x" * 129, "has spaces", "semi;colon", "ünïcode"])
async def test_missing_or_insane_request_id_is_replaced(client, sent):
    headers = {"X-Request-ID": sent.encode()} if sent else {}

    first = await client.get("/healthz", headers=headers)
    second = await client.get("/healthz", headers=headers)

    generated = first.headers["x-request-id"]
    assert generated != sent and generated != second.headers["x-request-id"]
    assert len(generated) <= 128


async def test_access_log_line_per_request(client, caplog):
    # DEBUG: the request did not fail (ACCESS_LOG_LEVEL=DEBUG shows these).
    with caplog.at_level("DEBUG", logger="fabula_gateway.access"):
        await client.get("/v1/nothing", headers={"X-Request-ID": "log-me"})

    (record,) = [r for r in caplog.records if r.name == "fabula_gateway.access"]
    assert (record.method, record.path, record.status) == ("GET", "/v1/nothing", 404)
    assert record.duration_ms >= 0


# ------------------------------------------------------------ misc


async def test_unexpected_error_is_a_500_problem_with_request_id(settings, serve):
    app = create_app(settings)

    @app.get("/boom", operation_id="boom")
    async def boom():
        raise RuntimeError("secret internals")

    async with serve(app) as client:
        response = await client.get("/boom")

    body = assert_problem(response, 500, "internal-error")
    assert "secret" not in body["detail"]


async def test_cors_is_off_unless_origins_are_configured(client, make_settings, serve):
    plain = await client.get("/healthz", headers={"Origin": "https://app.example"})
    async with serve(create_app(make_settings(cors_origins="https://app.example"))) as cors_client:
        allowed = await cors_client.get("/healthz", headers={"Origin": "https://app.example"})

    assert "access-control-allow-origin" not in plain.headers
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("text/event-stream", True),
        ("text/event-stream, application/json;q=0.5", True),
        ("application/json", False),
        ("*/*", False),
        (None, False),
        ("application/json, text/event-stream;q=0.1", False),
        ("text/event-stream;q=0", False),
    ],
)
def test_event_stream_is_chosen_by_accept(accept, expected):
    assert wants_event_stream(accept) is expected


def test_settings_read_the_gateway_prefix(monkeypatch):
    monkeypatch.setenv("GATEWAY_PORT", "8123")
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("GRPC_DEADLINE_SECONDS", "4")

    settings = GatewaySettings()

    assert settings.port == 8123
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.grpc_deadline_seconds == 4
    assert settings.host == "127.0.0.1" and settings.proxy_headers is False


async def test_metrics_are_served_on_their_own_port_and_count_by_route_template(
    make_settings, serve, user_id
):
    metrics_port = free_port()
    settings = make_settings(metrics_port=metrics_port)
    token, _ = issue_access_token(settings, user_id)

    async with serve(create_app(settings)) as client:
        await client.get(f"/v1/stories/{STORY_ID}", headers={"Authorization": f"Bearer {token}"})
        await client.get("/scanner/probe/12345")
        on_api_port = await client.get("/metrics")
        async with httpx.AsyncClient() as scraper:
            response = await scraper.get(f"http://127.0.0.1:{metrics_port}/metrics")

    # Not on the public port: clients of the API cannot read them.
    assert_problem(on_api_port, 404, "not-found")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'fabula_http_requests_total{method="GET",route="/v1/stories/{story_id}",status="503"}'
        in text
    )
    assert 'route="unmatched",status="404"' in text
    assert STORY_ID not in text and "/scanner" not in text


async def test_no_metrics_listener_unless_a_port_is_configured(settings, client):
    assert settings.metrics_port == 0
    assert (await client.get("/metrics")).status_code == 404


def test_metrics_port_must_differ_from_the_api_port(make_settings):
    with pytest.raises(ValueError, match="GATEWAY_METRICS_PORT"):
        make_settings(port=9100, metrics_port=9100)
