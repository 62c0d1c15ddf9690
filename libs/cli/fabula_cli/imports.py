"""fabula import ...: bring saved stories (and later other data) into Fabula.

These are operator commands: they talk to the services over gRPC (as `make
run` starts them), not to the public API, so they need the server packages
installed beside the CLI (the workspace's .venv has them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fabula_cli.app import new_app

imports = new_app("Import saved data for a user (operators; talks to the services directly).")


def _run_importer(module: str, argv: list[str]) -> None:
    """Run a server-side importer's main() (it draws its own progress and report)."""
    import importlib

    try:
        importer = importlib.import_module(f"fabula_stories.exchange.{module}")
    except ImportError:
        raise typer.BadParameter("needs the Fabula server packages (fabula-stories)") from None
    raise typer.Exit(importer.main(argv))


@imports.command("stories")
def stories(
    email: Annotated[str, typer.Option("--email", help="The user who gets the stories.")],
    folder: Annotated[Path, typer.Option("--dir", help="The folder of *.json files.")],
    source: Annotated[
        str | None, typer.Option(help="Where they come from (default ai-story-generator).")
    ] = None,
) -> None:
    """Import a folder of the AI Story Generator's saved stories, with a progress
    bar; stories imported before are skipped. Exit 1 when some failed, 2 for an
    unknown user, a missing folder or services that cannot be reached."""
    argv = ["--email", email, "--dir", str(folder)] + (["--source", source] if source else [])
    _run_importer("importer", argv)


@imports.command("council")
def council(
    folder: Annotated[
        Path, typer.Option("--dir", help="The council app's data folder (conversations/, ...).")
    ],
    email: Annotated[
        str | None,
        typer.Option(
            "--email", help="Owner of conversations without a user_id (single-user data)."
        ),
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Where they come from (default llm-council).")
    ] = None,
) -> None:
    """Import the LLM council app's JSON folder, with a progress bar and a final
    report; conversations imported before are skipped, users are matched by
    email. Exit 1 when some failed, 2 for a missing folder or services that
    cannot be reached."""
    argv = ["--dir", str(folder)] + (["--email", email] if email else [])
    _run_importer("council_importer", argv + (["--source", source] if source else []))
