"""Database engine, declarative bases and the transaction scope.

The edge (a gRPC servicer, a consumer) owns the transaction: it opens
`session_scope()`, hands the session to domain code, and the scope commits on
success or rolls back on error. Domain code never commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import Executable, MetaData, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.util import greenlet_spawn

from fabula_common.settings import ServiceSettings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_metadata(schema: str) -> MetaData:
    """MetaData bound to a service's own schema, with stable constraint names."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def make_base(schema: str) -> type[DeclarativeBase]:
    metadata = make_metadata(schema)

    class Base(DeclarativeBase):
        pass

    Base.metadata = metadata
    return Base


def create_engine(settings: ServiceSettings, **overrides: object) -> AsyncEngine:
    url = make_url(settings.database_url)
    connect_args: dict = {
        "timeout": settings.db_pool_timeout_seconds,
        "server_settings": {"statement_timeout": str(settings.db_statement_timeout_ms)},
    }
    if settings.db_statement_timeout_ms:
        # Client side too: a half-open connection (e.g. after a failover)
        # would never deliver the server's timeout.
        connect_args["command_timeout"] = settings.db_statement_timeout_ms / 1000 + 5
    ssl = url.query.get("ssl")
    if ssl:
        connect_args["ssl"] = ssl
        url = url.difference_update_query(["ssl"])
    options: dict = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_pre_ping": settings.db_pool_pre_ping,
        "pool_recycle": settings.db_pool_recycle_seconds,
        "pool_timeout": settings.db_pool_timeout_seconds,
        "echo": settings.db_echo,
        # Statement parameters (password hashes, emails, story text) stay out
        # of logs and error messages.
        "hide_parameters": True,
        "connect_args": connect_args,
    }
    engine = create_async_engine(url, **{**options, **overrides})
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_connection, connection_record, connection_proxy) -> None:
    """Instead of a pre-ping (a round trip on every checkout): a pooled
    connection the server has closed (a restart, pg_terminate_backend) is
    known closed to asyncpg without asking, so the pool drops it and every
    connection older than it, and connects afresh. A connection that died
    silently fails its first statement instead; SQLAlchemy then invalidates
    the pool the same way (see `Database.fetch` for the retry)."""
    if connection_record.driver_connection.is_closed():
        raise sa_exc.InvalidatePoolError("pooled connection closed by the server")


class Row(asyncpg.Record):
    """A row of `Database.fetch`: columns by name as attributes too, like
    SQLAlchemy's rows, so mapping code serves both."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class CompiledQuery:
    """A Core statement compiled once into the driver's SQL: written from the
    models like any other query, but run on asyncpg without SQLAlchemy's
    per-execution work (about half the CPU of a read). Reads go through
    `Database.fetch`; a self-contained write statement runs on a session's
    own connection (`driver_of`), inside its transaction if it has one."""

    sql: str
    parameters: tuple[str, ...]  # bound parameter names, in the SQL's $n order
    fixed: Mapping[str, Any]  # values the statement bound itself (literal())

    @classmethod
    def of(cls, statement: Executable) -> CompiledQuery:
        compiled = statement.compile(dialect=asyncpg_dialect())
        parameters = tuple(compiled.positiontup or ())
        binds = {name: compiled.binds[name] for name in parameters}
        fixed = {name: bind.value for name, bind in binds.items() if not bind.required}
        return cls(str(compiled), parameters, fixed)

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for the SQL, from its parameters by name."""
        return [values[name] if name in values else self.fixed[name] for name in self.parameters]


async def driver_of(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under `session` (its transaction, if it began
    one), for a CompiledQuery: the session still commits or rolls back."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


# A pooled connection that turns out dead when used (the server went away
# since it was checked in); asyncpg reports it unwrapped on this path.
_DEAD_CONNECTION = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    ConnectionError,
)


class Database:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.engine = create_engine(settings)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self._probe_engine: AsyncEngine | None = None

    async def ping(self) -> None:
        """`SELECT 1`, raising when the database does not answer (the health
        check; the caller bounds its time). It runs on a connection of its own:
        a pool busy with slow requests is not a database that is down."""
        if self._probe_engine is None:
            self._probe_engine = create_engine(
                self.settings, pool_size=1, max_overflow=0, pool_pre_ping=True
            )
        async with self._probe_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def fetch(self, query: CompiledQuery, **values: Any) -> Sequence[Row]:
        """The rows of read-only `query` with its parameters bound by name, run
        on a pooled connection's asyncpg driver outside any transaction: one
        statement, one round trip (its own consistent snapshot), no
        BEGIN/COMMIT. When the connection turns out to be dead (the database
        restarted since it was pooled) it is dropped and the query runs once
        more on another, so the caller never sees the stale connection. Never
        for writes."""
        arguments = query.arguments(values)
        for attempt in (1, 2):
            # The pool's connection itself: no SQLAlchemy Connection around it.
            pooled = await self.engine.raw_connection()
            try:
                return await pooled.driver_connection.fetch(
                    query.sql, *arguments, record_class=Row
                )
            except _DEAD_CONNECTION:
                if attempt == 2:
                    raise
                await greenlet_spawn(pooled.invalidate)
            finally:
                # In a greenlet: returning it may close it (an overflow connection).
                await greenlet_spawn(pooled.close)
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def session_scope(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._probe_engine is not None:
            await self._probe_engine.dispose()
