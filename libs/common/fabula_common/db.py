"""Database engine, declarative bases and the transaction scope.

The edge (a gRPC servicer, a consumer) owns the transaction: it opens
`session_scope()`, hands the session to domain code, and the scope commits on
success or rolls back on error. Domain code never commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

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
    return create_async_engine(url, **{**options, **overrides})


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

    @asynccontextmanager
    async def session_scope(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._probe_engine is not None:
            await self._probe_engine.dispose()
