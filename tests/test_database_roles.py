"""Each service's role may use its own schema and nothing else."""

from __future__ import annotations

import asyncpg
import pytest
from fabula_common.provision import SERVICES, service_database_url


def _dsn(admin_url: str, database: str, service: str) -> str:
    return service_database_url(admin_url, database, service).replace("postgresql+asyncpg", "postgresql")


async def test_a_role_cannot_read_another_services_tables(admin_url, test_database):
    conn = await asyncpg.connect(_dsn(admin_url, test_database, "users"))
    try:
        # Its own schema is on its search path and readable.
        assert await conn.fetchval("SELECT current_schema()") == "users"
        await conn.fetch("SELECT 1 FROM users.alembic_version")
        for other in SERVICES:
            if other == "users":
                continue
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT * FROM {other}.alembic_version")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.sneaky (id int)")
    finally:
        await conn.close()


async def test_every_schema_has_its_own_version_table(admin_url, test_database):
    for service in SERVICES:
        conn = await asyncpg.connect(_dsn(admin_url, test_database, service))
        try:
            owner = await conn.fetchval(
                "SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'alembic_version'",
                service,
            )
            assert owner == f"fabula_{service}"
            assert await conn.fetchval(f"SELECT count(*) FROM {service}.alembic_version") == 1
        finally:
            await conn.close()
