"""Admission control of password hashing: a storm of logins is refused beyond
a bounded queue, at once and with a retry delay, while calls that hash
nothing are served. A real users server over gRPC, Postgres and NATS."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest
from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.errors import error_details
from fabula_common.testing import free_port, running_app
from fabula_users.app import create_app
from fabula_users.settings import Settings

PASSWORD = "correct horse battery"
WORKERS, QUEUE = 2, 2
STORM = 40
# Generous against a loaded CI machine (the storm's hashes take the CPU from
# everything else); without admission control the last of the storm would
# wait for STORM hashes, many times the bounds below.
SLACK_SECONDS = 1.0


@pytest.fixture(scope="module")
async def users(test_database, test_stream):
    # The storm is of wrong passwords for one account: throttling (tested in
    # test_accounts) is out of the way here.
    settings = Settings(
        grpc_port=free_port(),
        password_hash_workers=WORKERS,
        password_hash_queue=QUEUE,
        login_max_failures=10 * STORM,
        login_failure_delay_seconds=0,
    )
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield users_pb2_grpc.UsersServiceStub(channel)


async def timed(call) -> tuple[object, float]:
    """The call's answer (or its error) and how long it took."""
    started = time.perf_counter()
    try:
        answer = await call
    except grpc.aio.AioRpcError as err:
        answer = err
    return answer, time.perf_counter() - started


def new_email() -> str:
    return f"storm-{uuid.uuid4().hex[:12]}@example.com"


async def test_a_login_storm_is_refused_beyond_the_queue_while_others_are_served(users):
    victim = await users.Register(users_pb2.RegisterRequest(email=new_email(), password=PASSWORD))
    bystander = await users.Register(
        users_pb2.RegisterRequest(email=new_email(), password=PASSWORD)
    )
    wrong = users_pb2.LoginRequest(email=victim.user.email, password="wrong password!")
    # One wrong login alone: the time of one hash on this machine, now.
    _, one_hash = await timed(users.Login(wrong))

    storm = [asyncio.create_task(timed(users.Login(wrong))) for _ in range(STORM)]
    await asyncio.sleep(0.05)  # the storm is hashing
    refreshed, refresh_took = await timed(
        users.Refresh(users_pb2.RefreshRequest(refresh_token=bystander.refresh_token))
    )
    looked_up, lookup_took = await timed(
        users.GetUser(users_pb2.GetUserRequest(user_id=bystander.user.id))
    )
    results = await asyncio.gather(*storm)

    # Calls that hash nothing are served, and quickly: they share the CPU
    # with the storm's hashes (and, in CI, with another test worker) but do
    # not wait behind them, which would take STORM / WORKERS hashes.
    assert isinstance(refreshed, users_pb2.TokenResponse)
    assert isinstance(looked_up, users_pb2.User)
    # Half of the wait behind the storm: on a loaded CI machine a refusal
    # took 8.7 hashes, against 20 for the last of the storm without a bound.
    behind_the_storm = STORM / WORKERS * one_hash
    quickly = behind_the_storm / 2 + SLACK_SECONDS
    assert max(refresh_took, lookup_took) < quickly

    refused = [(err, took) for err, took in results if err.code() == grpc.StatusCode.UNAVAILABLE]
    checked = [(err, took) for err, took in results if err.code() != grpc.StatusCode.UNAVAILABLE]
    assert len(refused) >= STORM // 2
    assert len(checked) >= WORKERS + QUEUE
    for err, took in refused:
        details = error_details(err)
        assert (details.reason, details.retry_after) == ("too-busy", 1.0)
        assert took < quickly  # refused without waiting behind the storm
    # Whoever was admitted waited at most for the hashes ahead of it (the
    # workers share the CPU, so count them one after another).
    bound = (WORKERS + QUEUE) * one_hash * 2 + SLACK_SECONDS
    for err, took in checked:
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert took < bound, (took, bound)

    # Once the storm has passed, logins are served again.
    logged_in = await users.Login(
        users_pb2.LoginRequest(email=victim.user.email, password=PASSWORD)
    )
    assert logged_in.user.id == victim.user.id


async def test_a_registration_beyond_the_queue_is_refused_too(users):
    wrong = users_pb2.LoginRequest(email=new_email(), password="wrong password!")
    storming = asyncio.Event()
    storming.set()

    async def storm() -> None:
        # Kept up until the registrations are done: the queue stays full
        # however slowly a loaded machine starts the first logins.
        calls = []
        while storming.is_set():
            calls += [
                asyncio.create_task(timed(users.Login(wrong))) for _ in range(WORKERS + QUEUE)
            ]
            await asyncio.sleep(0.002)
        await asyncio.gather(*calls)

    stormer = asyncio.create_task(storm())
    await asyncio.sleep(0.05)
    # A slot freed by a finished hash may go to a registration rather than
    # to the storm's next login: of several tries, one meets a full queue.
    refused = None
    for _ in range(20):
        email = new_email()
        registered, _ = await timed(
            users.Register(users_pb2.RegisterRequest(email=email, password=PASSWORD))
        )
        if isinstance(registered, grpc.aio.AioRpcError):
            refused = registered
            break
    storming.clear()
    await stormer

    assert refused is not None, "no registration met the full queue"
    assert error_details(refused).reason == "too-busy"
    # Nothing was created: the retry registers.
    retried = await users.Register(users_pb2.RegisterRequest(email=email, password=PASSWORD))
    assert retried.user.email == email
