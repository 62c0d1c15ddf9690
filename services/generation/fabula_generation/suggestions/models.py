"""The per-user counter of the suggestions rate limit."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fabula_generation.database import Base


class SuggestionRateWindow(Base):
    """A user's current fixed window: when it began and how many calls it
    admitted. One row per user, moved forward in place (repository.admit)."""

    __tablename__ = "suggestion_rate_windows"
    __table_args__ = (CheckConstraint("calls >= 0", name="calls_not_negative"),)

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    calls: Mapped[int] = mapped_column(Integer)
