"""Which database failures mean "not now" rather than "never": the one
classification of exceptions from Postgres (asyncpg, as SQLAlchemy wraps it)
by SQLSTATE, so a database that is restarting, overloaded or slow answers the
caller 503 with a retry delay instead of 500.

SQLAlchemy wraps a driver error in `DBAPIError` (its `orig` is the asyncpg
dialect's adapted error carrying `sqlstate`, whose `__cause__` is asyncpg's own
exception); errors of the connection itself (refused, reset, timed out) often
arrive unwrapped as OSError or TimeoutError. Both are looked at here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

from fabula_common.errors import Aborted, FabulaError, Unavailable

# SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html)
# after which the same call can succeed once the database is back or less busy.
_UNAVAILABLE_CLASSES = frozenset(
    {
        "08",  # connection exception: refused, lost, reset
        "53",  # insufficient resources: too many connections, out of memory, disk full
    }
)
_UNAVAILABLE_CODES = frozenset(
    {
        "57P01",  # admin_shutdown: the server is stopping (or pg_terminate_backend)
        "57P02",  # crash_shutdown: another backend crashed, the server restarts
        "57P03",  # cannot_connect_now: "the database system is starting up"
        "57P05",  # idle_session_timeout
        "57014",  # query_canceled: statement_timeout (or a cancel request)
        "55P03",  # lock_not_available: lock_timeout
        "25P03",  # idle_in_transaction_session_timeout
    }
)
# The transaction lost a race and was rolled back; retrying it is safe.
_ABORTED_CODES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
    }
)

# Failures to reach or hear from the database that carry no SQLSTATE.
_UNAVAILABLE_TYPES: tuple[type[BaseException], ...] = (
    sa_exc.TimeoutError,  # no pooled connection within DB_POOL_TIMEOUT_SECONDS
    sa_exc.OperationalError,
    sa_exc.InterfaceError,  # asyncpg's "connection is closed" and the like
    OSError,  # refused, reset, unreachable, name not resolved (ConnectionError is one)
    TimeoutError,  # asyncpg's connect and command timeouts
)
# OSErrors of the local filesystem: bugs or configuration, not an outage.
_LOCAL_OS_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, the driver error SQLAlchemy wrapped (`orig`) and their
    explicit causes. Not `__context__`: an error raised while handling a
    database error is a different failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def sqlstate(exc: BaseException) -> str | None:
    """The Postgres SQLSTATE of a database error, wrapped or not; None if it has none."""
    for error in _chain(exc):
        code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(code, str) and code:
            return code
    return None


def classify_database_error(exc: BaseException) -> FabulaError | None:
    """What the caller is told when `exc` is a transient database failure:
    `Unavailable` (503, retry later) when the database is unreachable,
    restarting, overloaded or too slow; `Aborted` when the transaction lost a
    race and may simply be retried. None when `exc` is not such a failure
    (a bug, a constraint violation: retrying cannot help)."""
    code = sqlstate(exc)
    if code is not None:
        if code in _ABORTED_CODES:
            return Aborted("the transaction conflicted with a concurrent one; retry it")
        if code in _UNAVAILABLE_CODES or code[:2] in _UNAVAILABLE_CLASSES:
            return Unavailable(f"the database is unavailable (SQLSTATE {code})")
        return None
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return Unavailable("the database connection was lost")
    if any(
        isinstance(error, _UNAVAILABLE_TYPES) and not isinstance(error, _LOCAL_OS_ERRORS)
        for error in _chain(exc)
    ):
        return Unavailable("the database is unavailable")
    return None


def log_background_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a background loop's failed round, which the next round retries: a
    transient database failure (an outage lasts many rounds) as one warning
    line, anything else with its traceback."""
    if classify_database_error(exc) is None:
        log.error("%s failed", what, exc_info=exc)
    else:
        log.warning("%s failed, will retry: %r", what, exc)
