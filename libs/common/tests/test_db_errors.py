"""Database failures that mean "not now" reach the caller as 503 (UNAVAILABLE
with a retry delay) or ABORTED, never as INTERNAL."""

from __future__ import annotations

import logging

import asyncpg
import grpc
import pytest
from fabula_common.db import Database
from fabula_common.db_errors import classify_database_error, log_background_failure, sqlstate
from fabula_common.errors import Aborted, Unavailable
from fabula_common.grpc_server import _map_exception
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.engine import make_url

from .conftest import EventTablesSettings


def raised_while_handling(error: Exception, handling: Exception) -> Exception:
    error.__context__ = handling
    return error


def wrapped(error: Exception) -> sa_exc.DBAPIError:
    """`error` as SQLAlchemy's asyncpg dialect hands it to application code."""
    adapted = AsyncAdapt_asyncpg_dbapi.Error(str(error), error)
    adapted.__cause__ = error
    return sa_exc.DBAPIError.instance("SELECT 1", None, adapted, AsyncAdapt_asyncpg_dbapi.Error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CrashShutdownError("terminating connection because of crash"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_database_errors_that_pass_are_unavailable_with_a_retry_delay(error):
    for exc in (error, wrapped(error)):
        mapped = _map_exception(exc)
        assert isinstance(mapped, Unavailable), exc
        assert mapped.code is grpc.StatusCode.UNAVAILABLE and mapped.retry_after
        assert error.sqlstate in mapped.message


@pytest.mark.parametrize(
    "exc",
    [
        sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(104, "Connection reset by peer"),
        OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432)"),
        TimeoutError(),
        sa_exc.InterfaceError("SELECT 1", None, Exception("connection is closed")),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_failures_to_reach_the_database_are_unavailable(exc):
    assert isinstance(_map_exception(exc), Unavailable)


def test_an_invalidated_connection_is_unavailable():
    exc = sa_exc.DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True)
    assert isinstance(_map_exception(exc), Unavailable)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_lost_race_is_aborted_and_may_be_retried(error):
    mapped = _map_exception(wrapped(error))
    assert isinstance(mapped, Aborted)
    assert mapped.code is grpc.StatusCode.ABORTED and mapped.retry_after


@pytest.mark.parametrize(
    "exc",
    [
        wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key")),
        wrapped(asyncpg.exceptions.UndefinedTableError('relation "x" does not exist')),
        ValueError("a bug"),
        FileNotFoundError("missing.json"),
        # Raised while handling a database error, but not caused by it.
        raised_while_handling(
            KeyError("a bug in an except block"),
            wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection")),
        ),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_bugs_and_bad_data_stay_internal(exc):
    assert classify_database_error(exc) is None
    assert _map_exception(exc).code is grpc.StatusCode.INTERNAL


# ------------------------------------------------------- against Postgres


@pytest.fixture
async def database(test_database, admin_url):
    url = make_url(admin_url).set(database=test_database).render_as_string(hide_password=False)
    db = Database(EventTablesSettings(database_url=url))
    yield db
    await db.dispose()


async def test_a_statement_timeout_is_unavailable(database):
    with pytest.raises(sa_exc.DBAPIError) as raised:
        async with database.session_scope() as session:
            await session.execute(text("SET LOCAL statement_timeout = 50"))
            await session.execute(text("SELECT pg_sleep(5)"))

    assert sqlstate(raised.value) == "57014"
    assert isinstance(_map_exception(raised.value), Unavailable)


async def test_a_terminated_backend_is_unavailable_and_the_pool_recovers(database):
    with pytest.raises(sa_exc.DBAPIError) as raised:
        async with database.session_scope() as session:
            await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    assert isinstance(_map_exception(raised.value), Unavailable), repr(raised.value)
    # The next transaction gets a fresh connection.
    async with database.session_scope() as session:
        assert await session.scalar(text("SELECT 1")) == 1


def test_a_background_round_logs_an_outage_as_one_line_and_a_bug_with_its_traceback(caplog):
    """A loop retried every second through a database outage must not fill the
    log with tracebacks; a bug must keep its traceback."""
    log = logging.getLogger("fabula.test.background")
    with caplog.at_level(logging.INFO, logger=log.name):
        log_background_failure(log, "claiming a job", wrapped(ConnectionRefusedError(111, "refused")))
        log_background_failure(log, "claiming a job", TimeoutError())
        try:
            raise KeyError("job")
        except KeyError as bug:
            log_background_failure(log, "claiming a job", bug)
    outage, slow, bug = caplog.records
    for record in (outage, slow):
        assert record.levelno == logging.WARNING and record.exc_info is None
        assert record.getMessage().startswith("claiming a job failed, will retry: ")
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
    assert bug.getMessage() == "claiming a job failed"
