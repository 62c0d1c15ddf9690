"""fabula stories ...: start, continue (streamed), end, list, search, show, export, delete."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from fabula_client import SegmentWritten, Story, StorySummary, StoryWritten, TextDelta
from rich.markup import escape
from rich.table import Table

from fabula_cli.app import new_app, out, session

stories = new_app("Stories: start one from a genre, watch it being written, export it.")

Direction = Annotated[
    str | None, typer.Option("--direction", "-d", help="What should happen next.")
]


@stories.command("new")
def new(
    ctx: typer.Context,
    genre: Annotated[str, typer.Option("--genre", "-g", help="e.g. mystery, fantasy.")],
    title: Annotated[str | None, typer.Option(help="Generated when omitted.")] = None,
    character: Annotated[
        list[str] | None, typer.Option("--character", "-c", help="A character (repeatable).")
    ] = None,
    opening_line: Annotated[str | None, typer.Option(help="The first line.")] = None,
) -> None:
    """Start a story: its title and opening are written for you (the opening
    appears as it is written)."""
    state = session(ctx)
    fields = {"title": title, "characters": character or [], "opening_line": opening_line}
    if state.json:
        state.emit(state.client.stories.create(genre, **fields))
        return
    _write_stream(state.client.stories.create(genre, **fields, stream=True))


@stories.command("continue")
def continue_(ctx: typer.Context, story_id: str, direction: Direction = None) -> None:
    """Write the next segment; the text appears as it is written."""
    state = session(ctx)
    if state.json:
        state.emit(state.client.stories.continue_(story_id, direction))
        return
    _write_stream(state.client.stories.continue_(story_id, direction, stream=True))


@stories.command("regenerate")
def regenerate(ctx: typer.Context, story_id: str, segment_id: str, direction: Direction = None) -> None:
    """Write another version of a segment (streamed)."""
    state = session(ctx)
    if state.json:
        state.emit(state.client.stories.regenerate(story_id, segment_id, direction))
        return
    _write_stream(state.client.stories.regenerate(story_id, segment_id, direction, stream=True))


def _write_stream(events) -> None:
    # Plain writes, flushed at each piece: a terminal (or a pipe) shows the
    # text as the model writes it.
    for event in events:
        if isinstance(event, TextDelta):
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, SegmentWritten):
            sys.stdout.write("\n")
            out.print(f"[dim]segment {event.segment.position}, {event.segment.word_count} words, "
                      f"id {event.segment.id}[/dim]")
        elif isinstance(event, StoryWritten):
            # The title comes with the story (generated once the opening is).
            story = event.story
            sys.stdout.write("\n\n")
            out.print(f"[bold]{escape(story.title)}[/bold]  [dim]{story.genre}[/dim]")
            out.print(
                f"[dim]id {story.id} — continue with: fabula stories continue {story.id}[/dim]"
            )


@stories.command("end")
def end(ctx: typer.Context, story_id: str, direction: Direction = None) -> None:
    """Write the ending; the story is then complete."""
    state = session(ctx)
    story = state.client.stories.end(story_id, direction)
    if state.json:
        state.emit(story)
        return
    out.print(escape(story.segments[-1].text) if story.segments else "")
    out.print("[dim]The end.[/dim]")


@stories.command("list")
def list_(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    genre: str | None = None,
    complete: Annotated[
        bool | None, typer.Option("--complete/--unfinished", help="Only complete or unfinished.")
    ] = None,
) -> None:
    """Your stories, newest first."""
    state = session(ctx)
    page = state.client.stories.list(limit=limit, cursor=cursor, genre=genre, is_complete=complete)
    _print_page(state, page)


@stories.command("search")
def search(
    ctx: typer.Context,
    query: str,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
) -> None:
    """Full-text search: words, "a phrase", -excluded; best match first."""
    state = session(ctx)
    _print_page(state, state.client.stories.search(query, limit=limit))


def _print_page(state, page) -> None:
    if state.json:
        state.emit(page)
        return
    table = Table("title", "genre", "segments", "complete")
    table.add_column("id", no_wrap=True, min_width=36)
    for story in page.items:
        table.add_row(escape(story.title), story.genre, str(story.segment_count),
                      "yes" if story.is_complete else "", story.id)
    out.print(table)
    if page.next_cursor:
        out.print(f"[dim]more: --cursor {page.next_cursor}[/dim]")


@stories.command("show")
def show(ctx: typer.Context, story_id: str) -> None:
    """A story with its text."""
    state = session(ctx)
    story = state.client.stories.get(story_id)
    if state.json:
        state.emit(story)
        return
    _print_story(story)


def _print_story(story: Story | StorySummary) -> None:
    status = "complete" if story.is_complete else f"{story.segment_count} segments"
    out.print(f"[bold]{escape(story.title)}[/bold]  [dim]{story.genre}, {status}[/dim]\n")
    for segment in getattr(story, "segments", []):
        out.print(escape(segment.text), end="\n\n")


@stories.command("export")
def export(
    ctx: typer.Context,
    story_id: str,
    format: Annotated[str, typer.Option("--format", "-f", help="md, txt or epub.")] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The file (default <id>.<format>; - for stdout).")
    ] = None,
) -> None:
    """Save the story as Markdown, text or an EPUB book."""
    state = session(ctx)
    content = state.client.stories.export(story_id, format)
    if output is not None and str(output) == "-":
        sys.stdout.buffer.write(content)
        return
    path = output or Path(f"{story_id}.{format}")
    path.write_bytes(content)
    state.report(f"Saved {path} ({len(content)} bytes).",
                 {"path": str(path), "bytes": len(content), "format": format})


@stories.command("delete")
def delete(ctx: typer.Context, story_id: str) -> None:
    """Delete a story."""
    state = session(ctx)
    state.client.stories.delete(story_id)
    state.report("Deleted.", {"id": story_id, "deleted": True})
