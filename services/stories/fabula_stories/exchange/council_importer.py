"""Import the LLM council app's JSON folder (see council_seed.py for its files).

    python -m fabula_stories.exchange.council_importer --dir council_data [--email ada@example.com]

(`make import-council DIR=<folder> [EMAIL=<email>]`.) Each conversation goes
to its owner's Fabula account: the council app's user_id → its profile's
email → users' FindUserByEmail. Conversations without a user_id (the app's
single-user version) go to --email's account. A conversation whose user has
no Fabula account (or no profile, or no --email) is reported, never given to
someone guessed. Stories' ImportConversation imports each once, keeping the
original id and the timestamps: running again imports only what was not
imported yet. Malformed files are reported and skipped; nothing of them is
stored.

Subscriptions are read and reported, not imported: billing owns plans and
Stripe subscriptions (set a plan with PUT /v1/admin/users/{id}/plan, or let
the user subscribe again through Stripe). The report lists each one with the
Fabula account it matches.

Services are reached as for `make import-stories` (importer.py). Exit
status: 0 when every file was imported or skipped, 1 when some failed or
belong to users Fabula does not know, 2 for a usage error or a service that
cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fabula.stories.v1 import conversations_pb2_grpc
from fabula.users.v1 import users_pb2_grpc
from rich.console import Console

from fabula_stories.exchange.council_seed import (
    DEFAULT_SOURCE,
    Profile,
    Subscription,
    read_conversation,
    read_profile,
    read_subscription,
)
from fabula_stories.exchange.importer import (
    USAGE,
    Report,
    connected,
    lookup_user,
    progress_bar,
    read_or_report,
    reporting,
    run_command,
    send_import,
)


def _json_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("*.json") if path.is_file()) if folder.is_dir() else []


def _read_each(folder: Path, reader, report: Report) -> list:
    """Every file of the folder `reader` can read; the others reported as failed."""
    read = (
        read_or_report(lambda path=path: reader(path), f"{folder.name}/{path.name}", report)
        for path in _json_files(folder)
    )
    return [found for found in read if found is not None]


@dataclass
class Owners:
    """Whose each conversation is: the council app's user ids → Fabula user ids."""

    users: users_pb2_grpc.UsersServiceStub
    emails: dict[str, str]
    default_email: str | None
    timeout: float
    _found: dict[str, str | None] = field(default_factory=dict)

    async def fabula_id(self, email: str) -> str | None:
        key = email.lower()
        if key not in self._found:
            self._found[key] = await lookup_user(self.users, email, self.timeout)
        return self._found[key]

    async def owner_of(self, council_user: str | None) -> tuple[str | None, str]:
        """(the Fabula user id, or None and why not)."""
        if council_user is None:
            if self.default_email is None:
                return None, "it has no user_id: give EMAIL=<email> for such conversations"
            email = self.default_email
        else:
            email = self.emails.get(council_user)
            if email is None:
                return None, f"user {council_user} has no profile (no email to match)"
        user_id = await self.fabula_id(email)
        if user_id is None:
            return None, f"unknown user: no Fabula account has the email {email}"
        return user_id, ""


async def run(folder: Path, email: str | None, source: str, console: Console) -> int:
    report = Report()
    profiles: list[Profile] = _read_each(folder / "profiles", read_profile, report)
    subscriptions: list[Subscription] = _read_each(
        folder / "subscriptions", read_subscription, report
    )
    conversations = _json_files(folder / "conversations")
    async with connected() as services:
        timeout = services.timeout
        owners = Owners(
            users=users_pb2_grpc.UsersServiceStub(services.users),
            emails={profile.user_id: profile.email for profile in profiles},
            default_email=email,
            timeout=timeout,
        )
        stories = conversations_pb2_grpc.ConversationsServiceStub(services.stories)
        with reporting(report, console):
            with progress_bar(len(conversations)) as working_on:
                for path in conversations:
                    with working_on(path.name):
                        await _import_one(stories, owners, path, source, timeout, report)
            await _note_subscriptions(owners, subscriptions, report)
    return report.exit_status


async def _import_one(
    stories: conversations_pb2_grpc.ConversationsServiceStub,
    owners: Owners,
    path: Path,
    source: str,
    timeout: float,
    report: Report,
) -> None:
    name = f"conversations/{path.name}"
    conversation = read_or_report(lambda: read_conversation(path, source), name, report)
    if conversation is None:
        return
    user_id, why_not = await owners.owner_of(conversation.owner)
    if user_id is None:
        report.failed.append((name, why_not))
        return
    conversation.request.user_id = user_id
    await send_import(stories.ImportConversation(conversation.request, timeout=timeout), name, report)


async def _note_subscriptions(
    owners: Owners, subscriptions: list[Subscription], report: Report
) -> None:
    if not subscriptions:
        return
    report.notes.append(
        f"subscriptions: {len(subscriptions)} read, not imported (billing owns plans: "
        "set one with PUT /v1/admin/users/{id}/plan, or the user subscribes through Stripe)"
    )
    for subscription in subscriptions:
        email = owners.emails.get(subscription.user_id)
        user_id = await owners.fabula_id(email) if email else None
        account = f"Fabula user {user_id} ({email})" if user_id else "no Fabula account"
        report.notes.append(
            f"  {subscription.user_id}: tier {subscription.tier}, status "
            f"{subscription.status or 'unknown'}, {account}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make import-council",
        description="Import the LLM council app's JSON folder (conversations/, profiles/, "
        "subscriptions/); conversations imported before are skipped.",
    )
    parser.add_argument("--dir", required=True, type=Path, help="the app's data folder")
    parser.add_argument(
        "--email", help="the Fabula account of conversations without a user_id (single-user data)"
    )
    parser.add_argument(
        "--source", default=DEFAULT_SOURCE, help=f"where they come from (default {DEFAULT_SOURCE})"
    )
    args = parser.parse_args(argv)  # exits with status 2 on a usage error
    if not (args.dir / "conversations").is_dir():
        parser.print_usage(sys.stderr)
        print(f"error: {args.dir} has no conversations folder", file=sys.stderr)
        return USAGE
    email = args.email.strip() if args.email and args.email.strip() else None
    return run_command(run(args.dir, email, args.source, Console(highlight=False)))


if __name__ == "__main__":
    sys.exit(main())
