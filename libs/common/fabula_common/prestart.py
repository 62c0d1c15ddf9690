"""Prestart step of a service: wait for its database, then migrate it.

    python -m fabula_common.prestart users

Runs as the service's own role (its <SERVICE>_DATABASE_URL), so it can only
touch that service's schema. Compose and Kubernetes run it before the service.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from sqlalchemy import text

from fabula_common.db import create_engine
from fabula_common.logging import configure_logging
from fabula_common.migrations import load_settings, upgrade

log = logging.getLogger("fabula.prestart")


async def wait_for_database(service: str, timeout: float) -> None:
    settings = load_settings(service)
    engine = create_engine(settings)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                return
            except Exception as exc:  # noqa: BLE001 - keep waiting until the deadline
                if time.monotonic() > deadline:
                    raise SystemExit(f"{service}: database not reachable after {timeout:.0f}s: {exc}")
                log.info("waiting for the database: %s", exc)
                await asyncio.sleep(1)
    finally:
        await engine.dispose()


async def migrate_exclusively(service: str) -> None:
    """Run the migrations while holding a Postgres advisory lock, so replicas
    starting together migrate one after another instead of racing."""
    settings = load_settings(service)
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            key = f"fabula-migrate-{service}"
            await conn.execute(text("SELECT pg_advisory_lock(hashtext(:key))"), {"key": key})
            try:
                await asyncio.to_thread(upgrade, service)
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("service", choices=["users", "stories", "generation", "billing"])
    parser.add_argument("--timeout", type=float, default=60.0)
    ns = parser.parse_args()
    configure_logging(f"{ns.service}-prestart")
    asyncio.run(wait_for_database(ns.service, ns.timeout))
    asyncio.run(migrate_exclusively(ns.service))
    log.info("%s migrated to head", ns.service)


if __name__ == "__main__":
    sys.exit(main())
