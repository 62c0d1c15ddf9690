"""Import the AI Story Generator's saved stories for one user.

    python -m fabula_stories.exchange.importer --email ada@example.com --dir saved_stories

(`make import-stories USER=<email> DIR=<folder>`.) Every *.json of the folder
is one story (see seed.py). The user is found with users' FindUserByEmail and
each story goes to stories' ImportStory, which imports a story once: running
it again imports only what was not imported yet. Malformed files are reported
and skipped; nothing of them is stored.

Services are reached as `make run` starts them: USERS_ADDR / STORIES_ADDR, or
127.0.0.1 and USERS_GRPC_PORT / STORIES_GRPC_PORT, else the default ports;
every call has the deadline GRPC_DEADLINE_SECONDS.

Exit status: 0 when every file was imported or skipped, 1 when some failed,
2 for a usage error, an unknown user or a service that cannot be reached.

The plumbing of an import run (finding users, a call per file, the progress
bar, the report, exit statuses) is shared with council_importer.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
from fabula.stories.v1 import stories_pb2_grpc
from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.grpc_client import ContextChannel, open_channel
from fabula_common.settings import CommonSettings
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from fabula_stories.exchange.seed import DEFAULT_SOURCE, MalformedStory, read_story_file

OK, SOME_FAILED, USAGE = 0, 1, 2
# Services that cannot be reached, or did not answer in time: the run stops
# (what was imported stays; running again skips it).
UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_DEFAULT_PORTS = {"users": 50051, "stories": 50052}


class Stop(Exception):
    """The run cannot go on; the message says why (exit status 2)."""


@dataclass
class Report:
    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    # Lines told after the counts (what was read but is not the importer's
    # to store).
    notes: list[str] = field(default_factory=list)

    def print(self, console: Console) -> None:
        console.print(
            f"imported {len(self.imported)}, skipped {len(self.skipped)} (already imported), "
            f"failed {len(self.failed)}"
        )
        for name, reason in self.failed:
            # soft_wrap: a line per file whatever the terminal's width (and greppable).
            console.print(f"  failed {name}: {reason}", markup=False, highlight=False, soft_wrap=True)
        for line in self.notes:
            console.print(line, markup=False, highlight=False, soft_wrap=True)

    @property
    def exit_status(self) -> int:
        return SOME_FAILED if self.failed else OK


def service_address(name: str) -> str:
    """Where `make run` starts the service (fabula_devtools.run derives
    <NAME>_ADDR from <NAME>_GRPC_PORT the same way)."""
    prefix = name.upper()
    explicit = os.environ.get(f"{prefix}_ADDR")
    if explicit:
        return explicit
    return f"127.0.0.1:{os.environ.get(f'{prefix}_GRPC_PORT', _DEFAULT_PORTS[name])}"


def error_message(err: grpc.aio.AioRpcError) -> str:
    if err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return f"too large for the stories service ({err.details()})"
    return err.details() or err.code().name.lower()


async def find_user(users: users_pb2_grpc.UsersServiceStub, email: str, timeout: float) -> str:
    user_id = await lookup_user(users, email, timeout)
    if user_id is None:
        raise Stop(f"no user has the email {email}")
    return user_id


async def lookup_user(
    users: users_pb2_grpc.UsersServiceStub, email: str, timeout: float
) -> str | None:
    """The id of the Fabula user with `email`, None when there is none."""
    try:
        user = await users.FindUserByEmail(
            users_pb2.FindUserByEmailRequest(email=email), timeout=timeout
        )
    except grpc.aio.AioRpcError as err:
        if err.code() is grpc.StatusCode.NOT_FOUND:
            return None
        if err.code() in UNREACHABLE:
            raise Stop(
                f"the users service at {service_address('users')} "
                f"cannot be reached ({err.code().name})"
            ) from None
        raise Stop(f"users refused the email {email!r}: {error_message(err)}") from None
    return user.id


async def import_file(
    stories: stories_pb2_grpc.StoriesServiceStub,
    path: Path,
    *,
    user_id: str,
    source: str,
    timeout: float,
    report: Report,
) -> None:
    request = read_or_report(
        lambda: read_story_file(path, user_id=user_id, source=source), path.name, report
    )
    if request is not None:
        await send_import(stories.ImportStory(request, timeout=timeout), path.name, report)


T = TypeVar("T")


def read_or_report(read: Callable[[], T], name: str, report: Report) -> T | None:
    """What `read` reads from the file `name`; None, and the file reported
    failed, when it is malformed or cannot be read."""
    try:
        return read()
    except MalformedStory as exc:
        report.failed.append((name, str(exc)))
    except OSError as exc:
        report.failed.append((name, f"cannot be read ({exc.strerror or exc})"))
    return None


async def send_import(call: Awaitable, name: str, report: Report) -> None:
    """Await an import call (its response says `imported`) into the report;
    Stop when the stories service cannot be reached."""
    try:
        response = await call
    except grpc.aio.AioRpcError as err:
        if err.code() in UNREACHABLE:
            raise Stop(
                f"the stories service at {service_address('stories')} "
                f"cannot be reached ({err.code().name}); run again to import the rest"
            ) from None
        if err.code() is grpc.StatusCode.UNAUTHENTICATED:
            raise Stop(f"the user's account cannot take imports: {err.details()}") from None
        report.failed.append((name, error_message(err)))
        return
    (report.imported if response.imported else report.skipped).append(name)


@dataclass(frozen=True)
class Services:
    users: ContextChannel
    stories: ContextChannel
    # Every call's deadline.
    timeout: float


@contextlib.asynccontextmanager
async def connected() -> AsyncIterator[Services]:
    """Channels to the users and stories services, closed at the end."""
    timeout = CommonSettings().grpc_deadline_seconds
    services = Services(
        users=open_channel(service_address("users"), timeout),
        stories=open_channel(service_address("stories"), timeout),
        timeout=timeout,
    )
    try:
        yield services
    finally:
        await asyncio.gather(services.users.close(), services.stories.close())


@contextlib.contextmanager
def reporting(report: Report, console: Console) -> Iterator[None]:
    """Print the report at the end, a Stop's included (what was done before
    it; main then tells why it stopped)."""
    try:
        yield
    except Stop:
        report.print(console)
        raise
    report.print(console)


async def run(email: str, folder: Path, source: str, console: Console) -> int:
    files = sorted(path for path in folder.glob("*.json") if path.is_file())
    report = Report()
    async with connected() as services:
        timeout = services.timeout
        user_id = await find_user(users_pb2_grpc.UsersServiceStub(services.users), email, timeout)
        stories = stories_pb2_grpc.StoriesServiceStub(services.stories)
        with reporting(report, console):
            await _import_all(
                stories, files, user_id=user_id, source=source, timeout=timeout, report=report
            )
    return report.exit_status


async def _import_all(
    stories: stories_pb2_grpc.StoriesServiceStub,
    files: list[Path],
    *,
    user_id: str,
    source: str,
    timeout: float,
    report: Report,
) -> None:
    with progress_bar(len(files)) as working_on:
        for path in files:
            with working_on(path.name):
                await import_file(
                    stories, path, user_id=user_id, source=source, timeout=timeout, report=report
                )


@contextlib.contextmanager
def progress_bar(total: int) -> Iterator[Callable[[str], contextlib.AbstractContextManager]]:
    """A progress bar on stderr; `with working_on(name):` shows the file at
    work and counts it done afterwards."""
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[current]}"),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task("import", total=total, current="")

        @contextlib.contextmanager
        def working_on(name: str) -> Iterator[None]:
            progress.update(task, current=name)
            yield
            progress.advance(task)

        yield working_on


def run_command(work: Awaitable[int]) -> int:
    """Run an import to its exit status; a Stop is told on stderr (status 2)."""
    try:
        return asyncio.run(work)
    except Stop as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False, highlight=False)
        return USAGE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make import-stories",
        description="Import a folder of the AI Story Generator's saved stories (*.json) "
        "for one user; stories imported before are skipped.",
    )
    parser.add_argument("--email", required=True, help="the user's email")
    parser.add_argument("--dir", required=True, type=Path, help="the folder of *.json files")
    parser.add_argument(
        "--source", default=DEFAULT_SOURCE, help=f"where they come from (default {DEFAULT_SOURCE})"
    )
    args = parser.parse_args(argv)  # exits with status 2 on a usage error
    console = Console(highlight=False)
    if not args.dir.is_dir():
        parser.print_usage(sys.stderr)
        print(f"error: {args.dir} is not a folder", file=sys.stderr)
        return USAGE
    return run_command(run(args.email.strip(), args.dir, args.source, console))


if __name__ == "__main__":
    sys.exit(main())
