"""The Stripe webhook inbox for operators: list the events whose handling
failed, and replay them.

    python -m fabula_billing.subscriptions.inbox list [--limit N]
    python -m fabula_billing.subscriptions.inbox replay EVENT_ID [EVENT_ID ...]
    python -m fabula_billing.subscriptions.inbox replay --parked

Reads BILLING_DATABASE_URL like the service. A replayed event is due at once
with fresh attempts; a running billing process handles it within
STRIPE_EVENT_POLL_SECONDS. Replaying is safe: an event already handled is
never handled again, and handling reads the subscription's current state
from Stripe. Fix the cause first (a price id, Stripe's key), or the event
fails and is parked again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from fabula_common.db import Database

from fabula_billing.settings import Settings
from fabula_billing.subscriptions import repository as repo


async def list_failed(db: Database, limit: int, out=sys.stdout) -> int:
    async with db.session_scope() as session:
        events = await repo.failed_events(session, limit)
    for event in events:
        state = "parked" if event.parked_at else f"next attempt {event.next_attempt_at:%F %T}"
        print(
            f"{event.id} {event.type} created {event.created:%F %T} attempts {event.attempts} "
            f"({state}): {event.last_error}",
            file=out,
        )
    print(f"{len(events)} failed", file=out)
    return len(events)


async def replay(db: Database, event_ids: list[str] | None, out=sys.stdout) -> int:
    async with db.session_scope() as session:
        replayed = await repo.replay_events(session, event_ids)
    for event_id in replayed:
        print(f"replayed {event_id}", file=out)
    print(f"{len(replayed)} replayed", file=out)
    return len(replayed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fabula_billing.subscriptions.inbox",
        description="List and replay Stripe webhook events whose handling failed.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="events not handled that failed at least once")
    listing.add_argument("--limit", type=int, default=100)
    replaying = commands.add_parser("replay", help="make failed events due again")
    replaying.add_argument("event_ids", nargs="*", help="Stripe event ids (evt_...)")
    replaying.add_argument("--parked", action="store_true", help="every parked event")
    args = parser.parse_args(argv)
    if args.command == "replay" and not args.event_ids and not args.parked:
        parser.error("name event ids or --parked")

    async def run() -> int:
        db = Database(Settings())
        try:
            if args.command == "list":
                return await list_failed(db, args.limit)
            return await replay(db, None if args.parked else args.event_ids)
        finally:
            await db.dispose()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
