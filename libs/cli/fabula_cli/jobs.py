"""fabula projects ... and fabula jobs ...: submit a brief, watch it with a progress bar."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from fabula_client import FabulaError, Job
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from fabula_cli.app import err, new_app, out, session

projects = new_app("Projects: where long-form jobs and their narratives live.")
jobs = new_app("Long-form jobs: submit a production brief and watch it being written.")

# The project `jobs submit` uses when none is named.
DEFAULT_PROJECT = "Terminal"


@projects.command("create")
def create_project(
    ctx: typer.Context,
    name: str,
    genre: Annotated[str, typer.Option(help="The default genre of its briefs.")] = "",
) -> None:
    """Create a project."""
    state = session(ctx)
    project = state.client.projects.create(name, default_genre=genre)
    if state.json:
        state.emit(project)
    else:
        out.print(f"{project.id}  {escape(project.name)}")


@projects.command("list")
def list_projects(ctx: typer.Context) -> None:
    """Your projects."""
    state = session(ctx)
    page = state.client.projects.list(limit=100)
    if state.json:
        state.emit(page)
        return
    table = Table("id", "name", "genre", "created")
    for project in page.items:
        table.add_row(project.id, escape(project.name), project.default_genre,
                      f"{project.created_at:%Y-%m-%d}")
    out.print(table)


@jobs.command("submit")
def submit(
    ctx: typer.Context,
    premise: Annotated[str, typer.Option("--premise", help="What the piece is about.")],
    project: Annotated[
        str | None, typer.Option(help=f"The project's id (default: your '{DEFAULT_PROJECT}' project).")
    ] = None,
    production_type: Annotated[str, typer.Option("--type", help="e.g. short_story.")] = "short_story",
    genre: str | None = None,
    character: Annotated[list[str] | None, typer.Option("--character", "-c")] = None,
    setting: str = "",
    tone: str = "",
    target_words: Annotated[int | None, typer.Option(min=1)] = None,
    watch_it: Annotated[bool, typer.Option("--watch", help="Then watch it to the end.")] = False,
) -> None:
    """Queue a production brief."""
    state = session(ctx)
    client = state.client
    project_id = project or _default_project(client)
    job = client.jobs.submit(
        project_id, premise, production_type=production_type, genre=genre,
        characters=character or [], setting=setting, tone=tone, target_words=target_words,
    )
    if watch_it:
        _watch(state, job)
        return
    if state.json:
        state.emit(job)
    else:
        out.print(f"Queued job {job.id} ({len(job.stages)} stages: {', '.join(job.stages)}).\n"
                  f"[dim]Watch it: fabula jobs watch {job.id}[/dim]")


def _default_project(client) -> str:
    for project in client.projects.list(limit=100).items:
        if project.name == DEFAULT_PROJECT:
            return project.id
    return client.projects.create(DEFAULT_PROJECT).id


@jobs.command("watch")
def watch(ctx: typer.Context, job_id: str) -> None:
    """Watch a job: a progress bar with the current stage and the cost so far."""
    state = session(ctx)
    _watch(state, state.client.jobs.get(job_id))


def _watch(state, job: Job) -> None:
    events = state.client.jobs.watch(job.id)
    if state.json:
        # One JSON event per line (JSON Lines), as they come.
        for event in events:
            sys.stdout.write(event.model_dump_json() + "\n")
            sys.stdout.flush()
        return
    progress = Progress(
        TextColumn("[bold]{task.fields[stage]:<12}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("${task.fields[cost]}"),
        TimeElapsedColumn(),
        console=out,
    )
    last = None
    with progress:
        task = progress.add_task("job", total=100, stage=job.current_stage or job.status,
                                 cost=job.actual_cost_usd)
        for event in events:
            fields = {"completed": event.progress_percentage}
            if event.job is not None:
                job = event.job
                fields["cost"] = job.actual_cost_usd
            if event.type == "stage_started":
                fields["stage"] = event.stage
                progress.console.print(f"stage {event.stage} started")
            elif event.type == "stage_finished":
                progress.console.print(f"stage {event.stage} finished")
            elif event.is_terminal:
                fields["stage"] = event.type
            progress.update(task, **fields)
            last = event
    outcome = last.type if last else job.status
    out.print(f"Job {job.id} {outcome}: {job.tokens_used} tokens, ${job.actual_cost_usd}.")
    if outcome != "done":
        raise FabulaError(None, title=f"Job {outcome}", detail=job.error_message or "")


@jobs.command("show")
def show(ctx: typer.Context, job_id: str) -> None:
    """A job's status, stages, progress and cost."""
    state = session(ctx)
    job = state.client.jobs.get(job_id)
    if state.json:
        state.emit(job)
        return
    out.print(f"{job.id}  {job.status}  {job.progress_percentage:.0f}%  stage {job.current_stage or '-'}"
              f"  ${job.actual_cost_usd} (estimated ${job.estimated_cost_usd})")
    out.print(f"stages: {', '.join(job.stages)}; done: {', '.join(job.completed_stages) or '-'}")
    if job.error_message:
        err.print(f"error: {job.error_message}", markup=False)


@jobs.command("list")
def list_jobs(ctx: typer.Context, status: str | None = None, limit: int = 20) -> None:
    """Your jobs, newest first."""
    state = session(ctx)
    page = state.client.jobs.list(status=status, limit=limit)
    if state.json:
        state.emit(page)
        return
    table = Table("id", "status", "type", "progress", "cost", "created")
    for job in page.items:
        table.add_row(job.id, job.status, job.production_type or "", f"{job.progress_percentage:.0f}%",
                      f"${job.actual_cost_usd}", f"{job.created_at:%Y-%m-%d %H:%M}")
    out.print(table)


@jobs.command("cancel")
def cancel(ctx: typer.Context, job_id: str) -> None:
    """Cancel a job (only what was used is billed)."""
    state = session(ctx)
    job = state.client.jobs.cancel(job_id)
    state.report(f"Job {job.id} {job.status}.", job)
