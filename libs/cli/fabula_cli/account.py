"""login, register, logout, whoami, usage and API keys."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer
from fabula_client import Tokens
from rich.progress_bar import ProgressBar
from rich.table import Table

from fabula_cli.app import new_app, out, session

Email = Annotated[str, typer.Option("--email", "-e", prompt=True, help="Your email.")]
Password = Annotated[
    str,
    typer.Option("--password", "-p", prompt=True, hide_input=True, envvar="FABULA_PASSWORD",
                 help="Your password (prompted when not given; or FABULA_PASSWORD)."),
]


def _signed_in(ctx: typer.Context, tokens: Tokens) -> None:
    # The client has handed the tokens to the store already (on_tokens).
    state = session(ctx)
    if state.json:
        state.emit({"user": tokens.user, "api_url": state.api_url})
    else:
        email = tokens.user.email if tokens.user else "?"
        out.print(f"Logged in to {state.api_url} as {email}.")


def login(ctx: typer.Context, email: Email, password: Password) -> None:
    """Log in; the tokens are kept in your config folder and refreshed on their own."""
    _signed_in(ctx, session(ctx).client.auth.login(email.strip(), password))


def register(
    ctx: typer.Context,
    email: Email,
    password: Password,
    name: Annotated[str | None, typer.Option("--name", help="Your full name.")] = None,
) -> None:
    """Create an account and log in."""
    _signed_in(ctx, session(ctx).client.auth.register(email.strip(), password, name))


def logout(ctx: typer.Context) -> None:
    """Forget the saved tokens for this API."""
    state = session(ctx)
    forgotten = state.store.forget(state.api_url)
    state.report("Logged out." if forgotten else "Not logged in.",
                 {"api_url": state.api_url, "logged_out": forgotten})


def whoami(ctx: typer.Context) -> None:
    """Who the saved login (or API key) is."""
    state = session(ctx)
    profile = state.client.me.get()
    if state.json:
        state.emit(profile)
        return
    out.print(f"{profile.email}  [dim]{profile.full_name or ''}  id {profile.id}  "
              f"at {state.api_url}[/dim]")


def usage(ctx: typer.Context) -> None:
    """Usage this period against the plan: a table and a bar."""
    state = session(ctx)
    used = state.client.usage.get()
    if state.json:
        state.emit(used)
        return
    table = Table(title=f"Plan [bold]{used.plan}[/bold], "
                        f"{used.period_start:%Y-%m-%d} to {used.period_end:%Y-%m-%d}")
    table.add_column("")
    table.add_column("used", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("", min_width=24)
    table.add_row(
        "generations",
        f"{used.generations_used}"
        + (f" ({used.generations_in_progress} in progress)" if used.generations_in_progress else ""),
        "unlimited" if used.generations_limit is None else str(used.generations_limit),
        _bar(Decimal(used.generations_used), used.generations_limit),
    )
    table.add_row(
        "cost (USD)",
        f"{used.cost_used_usd}",
        "unlimited" if used.cost_limit_usd is None else f"{used.cost_limit_usd}",
        _bar(used.cost_used_usd, used.cost_limit_usd),
    )
    out.print(table)


def _bar(used: Decimal, limit: Decimal | int | None) -> ProgressBar | str:
    if limit is None:
        return ""
    total = float(limit) or 1.0
    return ProgressBar(total=total, completed=min(float(used), total), width=24)


keys = new_app("API keys for scripts (`--api-key` or FABULA_API_KEY uses one).")


@keys.command("create")
def create_key(
    ctx: typer.Context,
    name: str,
    scope: Annotated[list[str], typer.Option("--scope", help="read or write (repeatable).")] = ["write"],  # noqa: B006
) -> None:
    """Create a key; its secret is shown this once."""
    state = session(ctx)
    created = state.client.api_keys.create(name, scope)
    if state.json:
        state.emit(created)
        return
    out.print(f"{created.key}\n[dim]id {created.id}; keep it safe: it is not shown again.[/dim]")


@keys.command("list")
def list_keys(ctx: typer.Context) -> None:
    """Your keys (no secrets)."""
    state = session(ctx)
    listed = state.client.api_keys.list()
    if state.json:
        state.emit(listed.items)
        return
    table = Table("id", "name", "scopes", "prefix", "created", "revoked")
    for key in listed.items:
        table.add_row(key.id, key.name, ",".join(key.scopes), key.prefix,
                      f"{key.created_at:%Y-%m-%d}", "yes" if key.revoked_at else "")
    out.print(table)


@keys.command("revoke")
def revoke_key(ctx: typer.Context, key_id: str) -> None:
    """Revoke a key."""
    state = session(ctx)
    state.client.api_keys.revoke(key_id)
    state.report("Revoked.", {"id": key_id, "revoked": True})
