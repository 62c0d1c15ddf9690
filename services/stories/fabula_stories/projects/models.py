"""Projects and the versioned narratives their generation jobs produced."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from fabula_common.db import utcnow
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fabula_stories.database import Base
from fabula_stories.stories.models import GENRE_MAX_LENGTH, TITLE_MAX_LENGTH

PROJECT_NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 4_000
WORLD_NOTES_MAX_LENGTH = 10_000
# Dollars to the nano, as billing keeps them.
Usd = Numeric(18, 9)
# ProductionType names as the jobs proto spells them without its prefix.
PRODUCTION_TYPES = ("short_story", "novelette", "novella", "chapter", "scene")
_PRODUCTION_TYPE_LIST = "('short_story', 'novelette', 'novella', 'chapter', 'scene')"


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint(
            "default_production_type IS NULL OR default_production_type IN "
            + _PRODUCTION_TYPE_LIST,
            name="default_production_type_known",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    name: Mapped[str] = mapped_column(String(PROJECT_NAME_MAX_LENGTH))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    default_genre: Mapped[str] = mapped_column(
        String(GENRE_MAX_LENGTH), default="", server_default=""
    )
    # None: the brief must say.
    default_production_type: Mapped[str | None] = mapped_column(String(20))
    world_notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Kept current by the narratives' arrival (JobCompleted), in its transaction.
    narrative_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_word_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    total_cost_usd: Mapped[Decimal] = mapped_column(Usd, default=Decimal(0), server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class Narrative(Base):
    """What a completed job wrote: version 1, or a revision (version n+1 of
    its parent's lineage, which shares the first version's id as root)."""

    __tablename__ = "narratives"
    __table_args__ = (
        CheckConstraint(
            "production_type IN " + _PRODUCTION_TYPE_LIST, name="production_type_known"
        ),
        CheckConstraint("version >= 1", name="version_positive"),
        Index("ix_narratives_root_narrative_id_version", "root_narrative_id", "version"),
        Index("ix_narratives_user_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("stories.projects.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # One narrative per job: a redelivered JobCompleted finds it there.
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    # No foreign keys: a lineage lives in one project and goes with it.
    parent_narrative_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    root_narrative_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    production_type: Mapped[str] = mapped_column(String(20))
    genre: Mapped[str] = mapped_column(String(GENRE_MAX_LENGTH))
    text: Mapped[str] = mapped_column(Text)
    word_count: Mapped[int] = mapped_column(Integer)
    quality_metrics: Mapped[dict[str, float]] = mapped_column(JSONB, default=dict)
    overall_quality_score: Mapped[float] = mapped_column(Double)
    cost_usd: Mapped[Decimal] = mapped_column(Usd)
    tokens_used: Mapped[int] = mapped_column(BigInteger)
    view_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    download_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    export_formats: Mapped[list[str]] = mapped_column(
        ARRAY(Text), default=list, server_default="{}"
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


# Serve ListProjects / ListNarratives: newest first, keyset-paginated.
Index(
    "ix_projects_user_id_created_at_id",
    Project.user_id,
    Project.created_at.desc(),
    Project.id.desc(),
)
Index(
    "ix_narratives_project_id_created_at_id",
    Narrative.project_id,
    Narrative.created_at.desc(),
    Narrative.id.desc(),
)
