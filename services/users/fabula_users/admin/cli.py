"""Operator commands of the users service.

    python -m fabula_users.admin.cli superuser EMAIL

makes an existing account a superuser (`make superuser EMAIL=...`), recorded
in the audit trail as done by this command. It reads USERS_DATABASE_URL like
the service.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from fabula_common.db import Database
from fabula_common.errors import FabulaError

from fabula_users.admin.service import grant_superuser_by_command
from fabula_users.settings import Settings


async def make_superuser(email: str) -> str:
    db = Database(Settings())
    try:
        async with db.session_scope() as session:
            user = await grant_superuser_by_command(session, email)
            return user.email
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fabula_users.admin.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    superuser = commands.add_parser("superuser", help="make an existing account a superuser")
    superuser.add_argument("email")
    args = parser.parse_args(argv)
    try:
        email = asyncio.run(make_superuser(args.email))
    except FabulaError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"{email} is now a superuser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
