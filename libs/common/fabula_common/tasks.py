"""Asyncio task plumbing shared by the services."""

from __future__ import annotations

import asyncio


def abandon(task: asyncio.Future) -> None:
    """Let `task` finish on its own, unawaited: cancelled, and its outcome,
    whatever it is, taken as seen (asyncio would otherwise log "exception was
    never retrieved"). For work whose caller has already acted without it."""
    task.cancel()
    task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()
