"""fabula council ...: ask the council of models; its stages appear live."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from fabula_client import ClarifyingQuestions, CouncilEvent
from rich.markup import escape

from fabula_cli.app import new_app, out, session

council = new_app("The council: several models answer, rank each other, and a chairman decides.")

STAGES = {
    "1": "Stage 1: the members answer",
    "2": "Stage 2: the members rank the answers",
    "3": "Stage 3: the chairman decides",
}

Conversation = Annotated[
    str | None,
    typer.Option("--conversation", help="Go on in this conversation (default: a new one)."),
]


@council.command("ask")
def ask(ctx: typer.Context, question: str, conversation: Conversation = None) -> None:
    """Ask a question; each stage is shown as it happens, the chairman's answer as it is written."""
    state = session(ctx)
    client = state.client
    conversation_id = conversation or client.conversations.create().id
    if state.json:
        state.emit({"conversation_id": conversation_id,
                    "answer": client.conversations.ask(conversation_id, question)})
        return
    _show(client.conversations.ask(conversation_id, question, stream=True), conversation_id)


@council.command("answer")
def answer(
    ctx: typer.Context,
    conversation_id: str,
    answers: Annotated[list[str], typer.Argument(help="One answer per question, in order.")],
) -> None:
    """Answer the chairman's clarifying questions; the council then deliberates."""
    state = session(ctx)
    if state.json:
        state.emit(state.client.conversations.follow_up(conversation_id, answers))
        return
    _show(state.client.conversations.follow_up(conversation_id, answers, stream=True), conversation_id)


def _show(events, conversation_id: str) -> None:
    chairman_streamed = False
    for event in events:
        chairman_streamed |= _show_event(event, conversation_id)
        if event.event == "message" and event.data.get("role") == "assistant" and not chairman_streamed:
            out.print(escape(str(event.data.get("content", ""))))


def _show_event(event: CouncilEvent, conversation_id: str) -> bool:
    """Show one event; True when it was the chairman's text."""
    data = event.data
    stage = str(event.stage)
    match event.event:
        case "stage_started":
            out.print(f"\n[bold]{STAGES.get(stage, 'Stage ' + stage)}[/bold]")
        case "delta" if stage == "3":
            # Only the chairman writes alone: its text is shown as it comes.
            sys.stdout.write(event.text)
            sys.stdout.flush()
            return True
        case "answer":
            words = len(str(data.get("text", "")).split())
            failed = f" [red]failed: {escape(str(data['error']))}[/red]" if data.get("error") else ""
            out.print(f"  {data.get('model')} answered ({words} words){failed}")
        case "review":
            ranking = ", ".join(data.get("ranking") or [])
            out.print(f"  {data.get('model')} ranked: {ranking}")
        case "aggregate":
            ranked = ", ".join(
                f"{m.get('model')} ({m.get('average_rank')})" for m in data.get("members", [])
            )
            out.print(f"  overall: {ranked}")
        case "chairman":
            sys.stdout.write("\n")
            out.print(f"  [dim]chairman {data.get('model')}[/dim]")
        case "title":
            out.print(f"[dim]Conversation: {escape(str(data.get('title')))} ({conversation_id})[/dim]")
        case "questions":
            questions = ClarifyingQuestions.model_validate(data).questions
            out.print("The chairman asks first:")
            for number, question in enumerate(questions, 1):
                out.print(f"  {number}. {escape(question)}")
            out.print(f'[dim]Answer: fabula council answer {conversation_id} "..." ...[/dim]')
    return False
