"""What a user reads about their usage: the ledger's entries (usage logs) and
the current period's ledger grouped per model and per operation. Read-only
queries over billing.usage_ledger; functions take the caller's session.

The breakdown selects the period by `recorded_at`, the moment the entry was
applied: the account's counters (`cost_used_usd`) move at that same moment,
so the breakdown's total is what the account says was used.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal

from fabula_common import pagination
from fabula_common.errors import InvalidArgument
from fabula_common.pagination import page_limit
from sqlalchemy import ColumnElement, case, func, literal_column, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_billing.usage.models import UsageLedgerEntry

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

Ledger = UsageLedgerEntry.__table__.c

# The operation a user reads: the model call's purpose without the "story_"
# every story call has ("story_opening" -> "opening"), story ideas as
# "suggestion"; other purposes as they are.
# Literals, not parameters: GROUP BY must repeat the SELECT's expression exactly.
OPERATION: ColumnElement[str] = case(
    (Ledger.purpose == literal_column("'story_suggestions'"), literal_column("'suggestion'")),
    else_=func.regexp_replace(Ledger.purpose, literal_column("'^story_'"), literal_column("''")),
)
# The production type a job stage's call was for ("short_story", ...); NULL for other calls.
PRODUCTION_TYPE: ColumnElement[str] = Ledger.attributes.op("->>")(
    literal_column("'production_type'")
)


def page_size(limit: int) -> int:
    """The page size a request asks for: 0 means the default."""
    return page_limit(limit, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


# A cursor is the (occurred_at, id) key of the last entry of the previous page.
def encode_cursor(occurred_at: dt.datetime, entry_id: int) -> str:
    return pagination.encode_cursor(occurred_at, str(entry_id))


def decode_cursor(cursor: str) -> tuple[dt.datetime, int] | None:
    """The key a cursor stands for; None for the first page (empty cursor)."""
    key = pagination.decode_cursor(cursor)
    if key is None:
        return None
    occurred_at, entry_id = key
    try:
        return occurred_at, int(entry_id)
    except ValueError:
        raise InvalidArgument("cursor is malformed") from None


@dataclass(frozen=True)
class UsageLog:
    id: int
    occurred_at: dt.datetime
    operation: str
    # The story's id when the call was about a story, else "".
    story_id: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    estimated: bool
    outcome: str
    counted: bool
    generation_id: str
    # What the producer said about the call, e.g. a job stage's production_type and stage.
    attributes: dict[str, str]


@dataclass(frozen=True)
class UsageLogPage:
    logs: list[UsageLog]
    # "" on the last page.
    next_cursor: str


async def list_usage_logs(
    session: AsyncSession, user_id: uuid.UUID, limit: int, cursor: str
) -> UsageLogPage:
    """Up to `limit` of the user's ledger entries, newest first, after `cursor`.
    Entries recorded later with an older time (events arrive in any order)
    land on a later page: a page walk never skips nor repeats an entry."""
    after = decode_cursor(cursor)
    query = (
        select(
            Ledger.id,
            Ledger.occurred_at,
            OPERATION,
            Ledger.subject_kind,
            Ledger.subject_id,
            Ledger.provider,
            Ledger.model,
            Ledger.prompt_tokens,
            Ledger.completion_tokens,
            Ledger.cost_usd,
            Ledger.usage_estimated,
            Ledger.outcome,
            Ledger.counted,
            Ledger.generation_id,
            Ledger.attributes,
        )
        .where(Ledger.user_id == user_id)
        .order_by(Ledger.occurred_at.desc(), Ledger.id.desc())
        # One row more than asked tells whether another page follows.
        .limit(limit + 1)
    )
    if after is not None:
        # A row comparison, so Postgres walks ix_usage_ledger_user_id_occurred_at_id.
        query = query.where(tuple_(Ledger.occurred_at, Ledger.id) < tuple_(*after))
    rows = (await session.execute(query)).all()
    logs = [
        UsageLog(
            id=row.id,
            occurred_at=row.occurred_at,
            operation=row[2],
            story_id=row.subject_id if row.subject_kind == "story" else "",
            provider=row.provider,
            model=row.model,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            cost_usd=row.cost_usd,
            estimated=row.usage_estimated,
            outcome=row.outcome,
            counted=row.counted,
            generation_id=row.generation_id,
            attributes=row.attributes or {},
        )
        for row in rows[:limit]
    ]
    next_cursor = ""
    if len(rows) > limit:
        next_cursor = encode_cursor(logs[-1].occurred_at, logs[-1].id)
    return UsageLogPage(logs=logs, next_cursor=next_cursor)


@dataclass(frozen=True)
class BreakdownRow:
    # The model (per-model rows), the operation (per-operation rows), the
    # production type (per-production-type rows), "" (total).
    key: str
    provider: str
    generations: int  # calls that counted against the plan
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal


@dataclass(frozen=True)
class Breakdown:
    by_model: list[BreakdownRow]
    by_operation: list[BreakdownRow]
    total: BreakdownRow
    # Only the calls that had a production type (job stages): sums to less
    # than the total when there were others.
    by_production_type: list[BreakdownRow]


async def usage_breakdown(
    session: AsyncSession, user_id: uuid.UUID, period_start: dt.datetime, period_end: dt.datetime
) -> Breakdown:
    """The ledger entries recorded in [period_start, period_end), summed per
    (model, provider), per operation, per production type and in total: one
    statement (GROUPING SETS), so they always agree."""
    operation = OPERATION.label("operation")
    # GROUPING(...) is 0 for the columns a row is grouped by.
    per_model = func.grouping(Ledger.model, Ledger.provider) == 0
    per_operation = func.grouping(OPERATION) == 0
    per_production_type = func.grouping(PRODUCTION_TYPE) == 0
    query = (
        select(
            per_model.label("per_model"),
            per_operation.label("per_operation"),
            per_production_type.label("per_production_type"),
            Ledger.model,
            Ledger.provider,
            operation,
            PRODUCTION_TYPE.label("production_type"),
            func.count().filter(Ledger.counted).label("generations"),
            func.count().label("calls"),
            func.coalesce(func.sum(Ledger.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(Ledger.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(Ledger.cost_usd), 0).label("cost_usd"),
        )
        .where(
            Ledger.user_id == user_id,
            Ledger.recorded_at >= period_start,
            Ledger.recorded_at < period_end,
        )
        .group_by(
            func.grouping_sets(
                tuple_(Ledger.model, Ledger.provider),
                tuple_(OPERATION),
                tuple_(PRODUCTION_TYPE),
                text("()"),
            )
        )
        .order_by(text("cost_usd DESC"), text("calls DESC"), Ledger.model, operation)
    )
    by_model: list[BreakdownRow] = []
    by_operation: list[BreakdownRow] = []
    by_production_type: list[BreakdownRow] = []
    total = BreakdownRow("", "", 0, 0, 0, 0, Decimal(0))
    for row in (await session.execute(query)).all():
        sums = (
            int(row.generations),
            int(row.calls),
            int(row.prompt_tokens),
            int(row.completion_tokens),
            Decimal(row.cost_usd),
        )
        if row.per_model:
            by_model.append(BreakdownRow(row.model, row.provider, *sums))
        elif row.per_operation:
            by_operation.append(BreakdownRow(row.operation, "", *sums))
        elif row.per_production_type:
            # The group of calls without a production type is no production type's.
            if row.production_type is not None:
                by_production_type.append(BreakdownRow(row.production_type, "", *sums))
        else:
            total = BreakdownRow("", "", *sums)
    return Breakdown(
        by_model=by_model,
        by_operation=by_operation,
        total=total,
        by_production_type=by_production_type,
    )

