"""The `fabula` command (console script): Fabula from a terminal.

Exit codes: 0 ok, 1 error, 2 usage (or a request the API found invalid),
3 authentication, 4 not found, 5 quota or rate limit, 6 unavailable. Errors
are one line on stderr: the problem's title and detail.
"""

from __future__ import annotations

import sys

import typer
from fabula_client import FabulaError

from fabula_cli import account
from fabula_cli.app import DEFAULT_BASE_URL, ApiKey, ApiUrl, JsonFlag, Session, fail, new_app
from fabula_cli.council import council
from fabula_cli.imports import imports
from fabula_cli.jobs import jobs, projects
from fabula_cli.stories import stories

app = new_app(
    "Fabula from a terminal: write stories, watch jobs and the council, see your usage.\n\n"
    "Exit codes: 0 ok, 1 error, 2 usage, 3 authentication, 4 not found, "
    "5 quota or rate limit, 6 unavailable."
)


@app.callback()
def main(
    ctx: typer.Context,
    api_url: ApiUrl = DEFAULT_BASE_URL,
    json_output: JsonFlag = False,
    api_key: ApiKey = None,
) -> None:
    ctx.obj = Session(api_url=api_url.rstrip("/"), json=json_output, api_key=api_key)
    ctx.call_on_close(ctx.obj.close)


for command in (account.login, account.register, account.logout, account.whoami, account.usage):
    app.command()(command)
app.add_typer(stories, name="stories")
app.add_typer(projects, name="projects")
app.add_typer(jobs, name="jobs")
app.add_typer(council, name="council")
app.add_typer(account.keys, name="keys")
app.add_typer(imports, name="import")


def run() -> None:
    """Entry point. Typer exits by itself (0, or 2 for a bad command line);
    an API error becomes one line on stderr and its exit code."""
    try:
        app(prog_name="fabula")
    except FabulaError as error:
        sys.exit(fail(error).exit_code)


if __name__ == "__main__":
    run()
