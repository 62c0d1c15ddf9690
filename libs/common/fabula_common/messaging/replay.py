"""Replay a consumer's dead letters: list them, re-publish each to its
original subject and remove it from the dead letters.

    python -m fabula_common.messaging.replay --consumer billing-usage-recorded [--limit N] [--dry-run]

Reads NATS_URL, NATS_STREAM and NATS_SUBJECT_PREFIX like the services. Safe
to run again, and while the consumer runs: consumers apply an event once
(their inbox keys on the event id), so a replayed event that was in fact
applied is acknowledged without effect. Fix the cause first (deploy the
handler that failed), or the replayed messages come back to the dead letters.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from fabula_common.messaging.bus import EventBus, dead_letter_subject
from fabula_common.messaging.dead_letters import DeadLetter, dead_letters, replay
from fabula_common.settings import CommonSettings


def describe(letter: DeadLetter) -> str:
    stored = letter.stored_at.isoformat(timespec="seconds") if letter.stored_at else "?"
    return (
        f"#{letter.sequence} {stored} {letter.subject} after {letter.deliveries} deliveries: "
        f"{letter.error}"
    )


async def replay_dead_letters(
    settings: CommonSettings, consumer: str, *, limit: int | None = None, dry_run: bool = False,
    out=sys.stdout,
) -> int:
    """Replay up to `limit` dead letters of `consumer` (list them only when
    `dry_run`); return how many were replayed (or listed)."""
    bus = EventBus(settings, name="dead-letter-replay")
    count = 0
    try:
        print(f"dead letters on {dead_letter_subject(settings, consumer)}:", file=out)
        async for letter in dead_letters(bus, consumer):
            if limit is not None and count >= limit:
                break
            if not dry_run:
                await replay(bus, letter)
            print(("would replay " if dry_run else "replayed ") + describe(letter), file=out)
            count += 1
        print(f"{count} {'listed' if dry_run else 'replayed'}", file=out)
    finally:
        await bus.close()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fabula_common.messaging.replay",
        description="Re-publish a consumer's dead letters to their original subject.",
    )
    parser.add_argument("--consumer", required=True, help="durable consumer name, e.g. billing-usage-recorded")
    parser.add_argument("--limit", type=int, default=None, help="replay at most this many (oldest first)")
    parser.add_argument("--dry-run", action="store_true", help="only list what would be replayed")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    try:
        asyncio.run(
            replay_dead_letters(CommonSettings(), args.consumer, limit=args.limit, dry_run=args.dry_run)
        )
    except Exception as exc:  # noqa: BLE001 - one clear line for the operator
        print(f"replay failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
