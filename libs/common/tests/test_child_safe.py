"""The child-safe mark travels like the request id: set where a request
enters (the gateway), carried by every outbound call, set again by every
server, so the last hop (generation's model calls) sees it."""

from __future__ import annotations

import grpc
from fabula_common.context import CHILD_SAFE_HEADER, child_safe_var
from fabula_common.grpc_client import open_channel
from fabula_common.grpc_server import ServerInterceptor


def _server(method: str, behaviour, *interceptors) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(interceptors=list(interceptors))
    service, name = method.split("/")
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                service, {name: grpc.unary_unary_rpc_method_handler(behaviour)}
            )
        ]
    )
    return server, server.add_insecure_port("127.0.0.1:0")


async def test_the_child_safe_mark_reaches_every_hop_and_only_when_set():
    seen: list[dict[str, str]] = []

    async def last(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.append(dict(context.invocation_metadata()))
        return request

    last_server, last_port = _server("test.Last/Call", last)
    middle_channel = open_channel(f"127.0.0.1:{last_port}", 5)

    async def middle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        # A service between the gateway and generation: it knows nothing of the mark.
        return await middle_channel.unary_unary("/test.Last/Call")(request)

    middle_server, middle_port = _server("test.Middle/Call", middle, ServerInterceptor("test"))
    await last_server.start()
    await middle_server.start()
    try:
        async with open_channel(f"127.0.0.1:{middle_port}", 5) as gateway:
            call = gateway.unary_unary("/test.Middle/Call")
            token = child_safe_var.set(True)  # as the gateway sets it for a child's request
            try:
                await call(b"x")
            finally:
                child_safe_var.reset(token)
            await call(b"x")
    finally:
        await middle_channel.close()
        await middle_server.stop(None)
        await last_server.stop(None)

    child, adult = seen
    assert child[CHILD_SAFE_HEADER] == "1"
    assert CHILD_SAFE_HEADER not in adult
