"""Projects and narratives as fabula.stories.v1 messages, and back."""

from __future__ import annotations

import datetime as dt

from fabula.generation.v1 import jobs_pb2
from fabula.stories.v1 import projects_pb2
from fabula_common.errors import InvalidArgument
from fabula_common.money import to_money
from google.protobuf.timestamp_pb2 import Timestamp

from fabula_stories.projects.models import Narrative, Project

_PRODUCTION_TYPES = {
    jobs_pb2.PRODUCTION_TYPE_SHORT_STORY: "short_story",
    jobs_pb2.PRODUCTION_TYPE_NOVELETTE: "novelette",
    jobs_pb2.PRODUCTION_TYPE_NOVELLA: "novella",
    jobs_pb2.PRODUCTION_TYPE_CHAPTER: "chapter",
    jobs_pb2.PRODUCTION_TYPE_SCENE: "scene",
}
_PRODUCTION_TYPE_VALUES = {name: value for value, name in _PRODUCTION_TYPES.items()}


def production_type_name(value: int) -> str:
    try:
        return _PRODUCTION_TYPES[value]
    except KeyError:
        raise InvalidArgument(f"production_type {value} is not known") from None


def optional_production_type(value: int) -> str | None:
    """A project's default: UNSPECIFIED means none."""
    if value == jobs_pb2.PRODUCTION_TYPE_UNSPECIFIED:
        return None
    return production_type_name(value)


def _timestamp(value: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def project_to_proto(project: Project) -> projects_pb2.Project:
    return projects_pb2.Project(
        id=str(project.id),
        user_id=str(project.user_id),
        name=project.name,
        description=project.description,
        default_genre=project.default_genre,
        default_production_type=_PRODUCTION_TYPE_VALUES.get(
            project.default_production_type or "", jobs_pb2.PRODUCTION_TYPE_UNSPECIFIED
        ),
        world_notes=project.world_notes,
        narrative_count=project.narrative_count,
        total_word_count=project.total_word_count,
        total_cost=to_money(project.total_cost_usd),
        created_at=_timestamp(project.created_at),
        updated_at=_timestamp(project.updated_at),
    )


def narrative_to_proto(narrative: Narrative, *, with_text: bool) -> projects_pb2.Narrative:
    return projects_pb2.Narrative(
        id=str(narrative.id),
        project_id=str(narrative.project_id),
        user_id=str(narrative.user_id),
        job_id=str(narrative.job_id),
        parent_narrative_id=str(narrative.parent_narrative_id or ""),
        root_narrative_id=str(narrative.root_narrative_id),
        version=narrative.version,
        title=narrative.title,
        production_type=_PRODUCTION_TYPE_VALUES[narrative.production_type],
        genre=narrative.genre,
        text=narrative.text if with_text else "",
        word_count=narrative.word_count,
        quality_metrics=narrative.quality_metrics,
        overall_quality_score=narrative.overall_quality_score,
        generation_cost=to_money(narrative.cost_usd),
        tokens_used=narrative.tokens_used,
        view_count=narrative.view_count,
        download_count=narrative.download_count,
        export_formats=list(narrative.export_formats),
        created_at=_timestamp(narrative.created_at),
    )
