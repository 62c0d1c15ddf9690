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
    try:
        from fabula_stories.exchange import importer
    except ImportError:
        raise typer.BadParameter("needs the Fabula server packages (fabula-stories)") from None
    argv = ["--email", email, "--dir", str(folder)] + (["--source", source] if source else [])
    raise typer.Exit(importer.main(argv))


# `fabula import council` (make import-council) goes here: one command per
# kind of import, each wrapping its importer's main() the same way.
