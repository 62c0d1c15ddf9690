"""Database provisioning, as the Postgres administrator.

Creates the database, one login role and one schema per service, each role
owning only its own schema (so it can read no other service's tables). Run by
`make run`, the compose bootstrap step and the tests; idempotent.
"""

from __future__ import annotations

import asyncpg

from fabula_common.settings import normalise_database_url

SERVICES = ("users", "stories", "generation", "billing", "media")


def role_name(service: str) -> str:
    return f"fabula_{service}"


def default_password(service: str) -> str:
    """Development-only password; production sets <SERVICE>_DATABASE_URL itself."""
    return role_name(service)


def _asyncpg_dsn(url: str) -> str:
    return normalise_database_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def provision(
    admin_url: str,
    database: str,
    passwords: dict[str, str] | None = None,
    services: tuple[str, ...] = SERVICES,
) -> None:
    passwords = passwords or {}
    admin = await asyncpg.connect(_asyncpg_dsn(admin_url), timeout=5)
    try:
        # Roles are cluster-wide: two provisioners at once (parallel test
        # workers, two bootstrap jobs) would race on the same role rows
        # ("tuple concurrently updated"). One at a time, on a session lock.
        await admin.execute("SELECT pg_advisory_lock(hashtext('fabula.provision'))")
        await _provision(admin, admin_url, database, passwords, services)
    finally:
        await admin.close()


async def _provision(
    admin: asyncpg.Connection,
    admin_url: str,
    database: str,
    passwords: dict[str, str],
    services: tuple[str, ...],
) -> None:
    if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
        await admin.execute(f"CREATE DATABASE {_quote_ident(database)}")
    for service in services:
        role = role_name(service)
        password = _quote_literal(passwords.get(service, default_password(service)))
        if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            await admin.execute(f"ALTER ROLE {_quote_ident(role)} LOGIN PASSWORD {password}")
        else:
            await admin.execute(f"CREATE ROLE {_quote_ident(role)} LOGIN PASSWORD {password}")

    target = await asyncpg.connect(_asyncpg_dsn(admin_url), database=database, timeout=5)
    try:
        db = _quote_ident(database)
        await target.execute(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
        await target.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for service in services:
            role = _quote_ident(role_name(service))
            schema = _quote_ident(service)
            await target.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}")
            await target.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}")
            await target.execute(f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")
            await target.execute(f"ALTER ROLE {role} IN DATABASE {db} SET search_path = {schema}")
    finally:
        await target.close()


async def drop_database(admin_url: str, database: str) -> None:
    admin = await asyncpg.connect(_asyncpg_dsn(admin_url), timeout=5)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_quote_ident(database)} WITH (FORCE)")
    finally:
        await admin.close()


def service_database_url(admin_url: str, database: str, service: str, password: str | None = None) -> str:
    """The URL a service uses: its own role, on the admin URL's host."""
    from sqlalchemy.engine import make_url

    url = make_url(normalise_database_url(admin_url))
    return url.set(
        username=role_name(service),
        password=password or default_password(service),
        database=database,
    ).render_as_string(hide_password=False)


def main() -> None:
    """`python -m fabula_common.provision`: the one-shot bootstrap step.

    Reads POSTGRES_ADMIN_URL, FABULA_DATABASE_NAME and, per service, the
    password of its role from <SERVICE>_DB_PASSWORD (development defaults
    otherwise).
    """
    import asyncio
    import os

    admin_url = os.environ.get("POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    database = os.environ.get("FABULA_DATABASE_NAME", "fabula")
    passwords = {
        s: os.environ[f"{s.upper()}_DB_PASSWORD"] for s in SERVICES if os.environ.get(f"{s.upper()}_DB_PASSWORD")
    }
    asyncio.run(provision(admin_url, database, passwords))
    print(f"provisioned database {database}: schemas and roles for {', '.join(SERVICES)}")


if __name__ == "__main__":
    main()
