"""Alembic plumbing shared by every service.

Each service keeps its migrations in `<package>/migrations` (script_location
"<package>:migrations"), with its version table inside its own schema, and
runs them as its own database role. Its env.py is one call to `run_env`.
"""

from __future__ import annotations

import asyncio
import importlib

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData

from fabula_common.db import create_engine
from fabula_common.settings import ServiceSettings


def run_env(metadata: MetaData, settings: ServiceSettings) -> None:
    """Body of a service's migrations/env.py."""
    schema = metadata.schema
    options = dict(
        target_metadata=metadata,
        version_table_schema=schema,
        include_schemas=True,
        # The role's search_path makes its schema the default, which Alembic
        # reports as None.
        include_name=lambda name, type_, _parent: type_ != "schema" or name in (None, schema),
    )
    if context.is_offline_mode():
        context.configure(url=settings.database_url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    def migrate(connection) -> None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()

    async def run_online() -> None:
        engine = create_engine(settings)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
        finally:
            await engine.dispose()

    asyncio.run(run_online())


def service_package(service: str) -> str:
    return f"fabula_{service}"


def load_settings(service: str) -> ServiceSettings:
    module = importlib.import_module(f"{service_package(service)}.settings")
    return module.Settings()


def alembic_config(service: str) -> Config:
    config = Config()
    config.set_main_option("script_location", f"{service_package(service)}:migrations")
    return config


def upgrade(service: str, revision: str = "head") -> None:
    """Blocking (Alembic runs its own event loop): call from a thread in async code."""
    command.upgrade(alembic_config(service), revision)


def downgrade(service: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(service), revision)


