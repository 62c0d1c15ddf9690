"""Export and deletion of an account, over real gRPC, Postgres and NATS."""

from __future__ import annotations

import datetime as dt
import uuid

import grpc
import nats
import pytest
from fabula.users.v1 import events_pb2, users_pb2, users_pb2_grpc
from fabula_common.db import Database
from fabula_common.errors import error_reason
from fabula_common.messaging.bus import subject_for
from fabula_common.testing import free_port, running_app
from fabula_users.accounts.models import RefreshToken
from fabula_users.app import create_app
from fabula_users.settings import Settings
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select

PASSWORD = "correct horse battery"
FRESH_SECONDS = 120


@pytest.fixture(scope="module")
async def users(test_database, test_stream):
    settings = Settings(grpc_port=free_port(), fresh_sign_in_seconds=FRESH_SECONDS)
    async with running_app(create_app(settings)) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            yield users_pb2_grpc.UsersServiceStub(channel)


@pytest.fixture(scope="module")
async def db(test_database):
    database = Database(Settings())
    yield database
    await database.dispose()


async def register(users) -> users_pb2.TokenResponse:
    email = f"leaver-{uuid.uuid4().hex[:12]}@example.com"
    return await users.Register(
        users_pb2.RegisterRequest(email=email, password=PASSWORD, full_name="Ada")
    )


def signed_in(seconds_ago: float) -> Timestamp:
    moment = Timestamp()
    moment.FromDatetime(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago))
    return moment


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_export_holds_the_profile(users):
    registered = await register(users)

    export = await users.ExportUser(users_pb2.ExportUserRequest(user_id=registered.user.id))

    assert export.user.id == registered.user.id
    assert export.user.email == registered.user.email and export.user.full_name == "Ada"


async def test_deletion_needs_the_password_unless_the_sign_in_is_fresh(users):
    registered = await register(users)
    user_id = registered.user.id

    stale = await refused(
        users.DeleteUser(
            users_pb2.DeleteUserRequest(
                user_id=user_id, fresh_sign_in_at=signed_in(FRESH_SECONDS + 30)
            )
        )
    )
    assert stale.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(stale) == "password-required"
    wrong = await refused(
        users.DeleteUser(users_pb2.DeleteUserRequest(user_id=user_id, password="not it at all"))
    )
    assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(wrong) == "invalid-credentials"
    # Still there after both refusals.
    assert (await users.GetUser(users_pb2.GetUserRequest(user_id=user_id))).id == user_id

    await users.DeleteUser(
        users_pb2.DeleteUserRequest(user_id=user_id, fresh_sign_in_at=signed_in(5))
    )

    gone = await refused(users.GetUser(users_pb2.GetUserRequest(user_id=user_id)))
    assert gone.code() == grpc.StatusCode.NOT_FOUND


async def test_deletion_with_the_password_removes_the_account_and_its_tokens(users, db):
    registered = await register(users)
    user_id = registered.user.id

    await users.DeleteUser(users_pb2.DeleteUserRequest(user_id=user_id, password=PASSWORD))

    login = await refused(
        users.Login(users_pb2.LoginRequest(email=registered.user.email, password=PASSWORD))
    )
    assert login.code() == grpc.StatusCode.UNAUTHENTICATED
    refresh = await refused(
        users.Refresh(users_pb2.RefreshRequest(refresh_token=registered.refresh_token))
    )
    assert refresh.code() == grpc.StatusCode.UNAUTHENTICATED
    async with db.session_scope() as session:
        tokens = await session.scalar(
            select(func.count())
            .select_from(RefreshToken)
            .where(RefreshToken.user_id == uuid.UUID(user_id))
        )
    assert tokens == 0
    again = await refused(
        users.DeleteUser(users_pb2.DeleteUserRequest(user_id=user_id, password=PASSWORD))
    )
    assert again.code() == grpc.StatusCode.NOT_FOUND


async def test_deletion_publishes_user_deleted(users, nats_url):
    registered = await register(users)
    subject = subject_for(Settings(), "users", "user_deleted")
    nc = await nats.connect(nats_url, connect_timeout=2)
    try:
        subscription = await nc.subscribe(subject)
        await users.DeleteUser(
            users_pb2.DeleteUserRequest(user_id=registered.user.id, password=PASSWORD)
        )
        while True:
            message = await subscription.next_msg(timeout=10)
            event = events_pb2.UserDeleted.FromString(message.data)
            if event.user_id == registered.user.id:
                break
    finally:
        await nc.close()

    assert uuid.UUID(event.event_id)
    assert event.HasField("occurred_at")
