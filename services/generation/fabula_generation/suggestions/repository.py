"""All SQL of suggestions: the rate limit's counter."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_generation.suggestions.models import SuggestionRateWindow


async def admit(
    session: AsyncSession, user_id: str, limit: int, window: dt.timedelta
) -> float | None:
    """Count one call in the user's fixed window if it has room: None when
    admitted, else the seconds until the full window ends. One statement
    decides: the row lock of INSERT ... ON CONFLICT DO UPDATE orders
    concurrent calls, each re-checking the WHERE on the row as the previous
    one left it, so exactly `limit` calls of a window get through however
    many race. The time is the database's, the same for every instance."""
    table = SuggestionRateWindow.__table__
    now = func.now()
    ended = table.c.window_start <= now - window
    statement = (
        insert(table)
        .values(user_id=user_id, window_start=now, calls=1)
        .on_conflict_do_update(
            index_elements=[table.c.user_id],
            set_={
                "window_start": case((ended, now), else_=table.c.window_start),
                "calls": case((ended, 1), else_=table.c.calls + 1),
            },
            where=ended | (table.c.calls < limit),
        )
        .returning(table.c.calls)
    )
    if await session.scalar(statement) is not None:
        return None
    wait = await session.scalar(
        select(func.extract("epoch", table.c.window_start + window - now)).where(
            table.c.user_id == user_id
        )
    )
    # now() is each transaction's start: a refused call that began just before
    # the call opening the window would otherwise be told to wait a bit more
    # than the whole window.
    return min(max(float(wait or 0), 0.0), window.total_seconds())


async def delete_user_windows(session: AsyncSession, user_id: str) -> int:
    deleted = await session.execute(
        SuggestionRateWindow.__table__.delete().where(
            SuggestionRateWindow.__table__.c.user_id == user_id
        )
    )
    return deleted.rowcount or 0
