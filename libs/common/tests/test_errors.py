"""Domain errors travel as gRPC's standard rich status (ErrorInfo, RetryInfo):
a peer's answer becomes the domain error it stands for, so it travels on
unchanged, and gRPC's own failures never pose as domain errors."""

from __future__ import annotations

import grpc
import pytest
from fabula_common.errors import (
    ERROR_DOMAIN,
    Conflict,
    FabulaError,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    NotFound,
    QuotaExceeded,
    RateLimited,
    StoryBusy,
    StoryComplete,
    Unavailable,
    UpstreamError,
    error_details,
    error_reason,
    from_rpc_error,
)
from fabula_common.grpc_client import open_channel
from fabula_common.grpc_server import GrpcApp
from fabula_common.settings import ServiceSettings
from fabula_common.testing import free_port, running_app
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from pydantic_settings import SettingsConfigDict

STORY_ID = "0b6f3f0e-8a43-4e0c-9d0f-5f7e6a1c2b3d"


def answered_with(error: FabulaError) -> grpc.aio.AioRpcError:
    """The failed call a client sees when a server aborts with `error`."""
    status = error.to_status()
    trailers = grpc.aio.Metadata(*status.trailing_metadata)
    return grpc.aio.AioRpcError(status.code, grpc.aio.Metadata(), trailers, status.details)


def grpcs_own(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """A status gRPC itself produced: no rich status at all."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


# --- Domain error -> rich status -> domain error ---------------------------------------


def test_a_busy_story_says_why_which_story_and_when_to_retry():
    err = answered_with(StoryBusy("being written", metadata={"story_id": STORY_ID}))

    assert err.code() is grpc.StatusCode.FAILED_PRECONDITION
    details = error_details(err)
    assert details.reason == "story-busy"
    assert details.metadata == {"story_id": STORY_ID}
    assert details.retry_after == pytest.approx(1.0)


def test_a_complete_story_is_final_no_retry_is_offered():
    details = error_details(answered_with(StoryComplete("story is complete")))

    assert (details.reason, details.retry_after) == ("story-complete", None)


@pytest.mark.parametrize(
    "error",
    [
        StoryBusy("being written", metadata={"story_id": STORY_ID}),
        StoryComplete("story is complete", metadata={"story_id": STORY_ID}),
        QuotaExceeded("quota spent"),
        NotFound("story not found"),
        Unavailable("a dependency is unavailable"),
        UpstreamError("rate-limiting", reason=UpstreamError.RATE_LIMITED, retry_after=7),
        Conflict("not now"),
        IdempotencyKeyInProgress("the first request is still being processed"),
        IdempotencyKeyReused("idempotency_key: already used for a different request"),
        RateLimited("too many story suggestions", retry_after=42),
    ],
    ids=lambda error: error.reason,
)
def test_a_peers_domain_error_travels_on_unchanged(error):
    relayed = from_rpc_error(answered_with(error))

    assert type(relayed) is type(error)
    assert (relayed.code, relayed.reason) == (error.code, error.reason)
    assert relayed.message == error.message
    assert (relayed.metadata, relayed.retry_after) == (error.metadata, error.retry_after)


def test_an_unknown_reason_of_ours_keeps_its_code_and_reason():
    relayed = from_rpc_error(answered_with(NotFound("no such plan", reason="plan-not-found")))

    assert isinstance(relayed, NotFound) and relayed.reason == "plan-not-found"


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_a_dead_or_slow_peer_is_unavailable_and_worth_retrying(code):
    error = from_rpc_error(grpcs_own(code, "connection refused"))

    assert isinstance(error, Unavailable) and error.retry_after


def test_grpcs_own_resource_exhausted_is_not_a_quota_refusal():
    err = grpcs_own(grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max")

    assert error_reason(err) is None
    error = from_rpc_error(err)
    assert type(error) is FabulaError and error.code is grpc.StatusCode.INTERNAL


def test_another_domains_error_info_is_not_taken_for_ours():
    rich = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="x")
    info = error_details_pb2.ErrorInfo(reason="quota-exceeded", domain="example.com")
    rich.details.add().Pack(info)
    status = rpc_status.to_status(rich)
    err = grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata), "x"
    )

    assert error_reason(err) is None


# --- Over a real channel ---------------------------------------------------------------

ERRORS = "fabula.test.v1.ErrorService"


class ErrorTestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ERRORS_TEST_")
    database_url: str = "postgresql://example:example@127.0.0.1:5432/fabula"
    grpc_port: int = 0


def _error_app(peer: dict[str, grpc.aio.Channel]) -> GrpcApp:
    """`Fail` raises the domain error its request names; `Relay` calls Fail on a
    peer, as stories calls billing; `Stream` fails after its first message."""

    async def fail(request: bytes, context) -> bytes:
        match request:
            case b"busy":
                raise StoryBusy("being written", metadata={"story_id": STORY_ID})
            case b"complete":
                raise StoryComplete("story is complete")
            case b"database-down":
                raise ConnectionRefusedError("127.0.0.1:5432")
        raise RuntimeError("a bug")

    async def relay(request: bytes, context) -> bytes:
        return await peer["channel"].unary_unary(f"/{ERRORS}/Fail")(request)

    async def stream(request: bytes, context):
        yield b"first"
        raise UpstreamError("provider is rate-limiting", reason=UpstreamError.RATE_LIMITED)

    handler = grpc.method_handlers_generic_handler(
        ERRORS,
        {
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Relay": grpc.unary_unary_rpc_method_handler(relay),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
        },
    )
    app = GrpcApp("errors-test", ErrorTestSettings(grpc_port=free_port()))
    app.add_servicer(lambda h, server: server.add_generic_rpc_handlers((h,)), handler, ERRORS)
    return app


async def _failure(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_a_server_sends_the_standard_rich_status_any_grpc_client_can_read():
    async with running_app(_error_app({})) as address, open_channel(address, 5) as client:
        err = await _failure(client.unary_unary(f"/{ERRORS}/Fail")(b"busy"))

    assert err.code() is grpc.StatusCode.FAILED_PRECONDITION
    # Read with grpc_status alone, as a client in any language would.
    rich = rpc_status.from_call(err)
    assert rich.message == "being written"
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert rich.details[0].Unpack(info) and rich.details[1].Unpack(retry)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "story-busy", ERROR_DOMAIN, {"story_id": STORY_ID}
    )
    assert retry.retry_delay.ToTimedelta().total_seconds() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("request_body", "code", "reason", "retry"),
    [
        (b"complete", grpc.StatusCode.FAILED_PRECONDITION, "story-complete", False),
        (b"database-down", grpc.StatusCode.UNAVAILABLE, "unavailable", True),
        (b"crash", grpc.StatusCode.INTERNAL, "internal", False),
    ],
)
async def test_every_failure_is_sent_with_a_reason(request_body, code, reason, retry):
    async with running_app(_error_app({})) as address, open_channel(address, 5) as client:
        err = await _failure(client.unary_unary(f"/{ERRORS}/Fail")(request_body))

    details = error_details(err)
    assert (err.code(), details.reason, details.retry_after is not None) == (code, reason, retry)
    assert "127.0.0.1" not in err.details() and "a bug" not in err.details()


async def test_a_peers_error_is_relayed_with_its_details():
    peer: dict[str, grpc.aio.Channel] = {}
    async with running_app(_error_app(peer)) as address, open_channel(address, 5) as client:
        peer["channel"] = open_channel(address, 5)
        try:
            err = await _failure(client.unary_unary(f"/{ERRORS}/Relay")(b"busy"))
        finally:
            await peer["channel"].close()

    details = error_details(err)
    assert (err.code(), err.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "being written")
    assert (details.reason, details.metadata) == ("story-busy", {"story_id": STORY_ID})
    assert details.retry_after == pytest.approx(1.0)


async def test_a_stream_that_fails_midway_sends_the_rich_status():
    async with running_app(_error_app({})) as address, open_channel(address, 5) as client:
        call = client.unary_stream(f"/{ERRORS}/Stream")(b"")
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for message in call:
                received.append(message)

    assert received == [b"first"]
    details = error_details(caught.value)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert details.reason == UpstreamError.RATE_LIMITED and details.retry_after


async def test_grpcs_own_transport_limit_carries_no_reason():
    async with running_app(_error_app({})) as address, open_channel(address, 5) as client:
        # Over the server's 4 MB receive limit: refused by gRPC, never reaching a handler.
        err = await _failure(client.unary_unary(f"/{ERRORS}/Fail")(b"x" * (5 * 1024 * 1024)))

    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(err) is None
    assert not isinstance(from_rpc_error(err), QuotaExceeded)
