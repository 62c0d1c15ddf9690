"""Projects and narratives (ProjectsService) and the JobCompleted consumer that
stores narratives, over real gRPC, Postgres and NATS."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import grpc
import nats
import pytest
from fabula.common.v1 import money_pb2
from fabula.generation.v1 import events_pb2 as generation_events
from fabula.generation.v1 import jobs_pb2
from fabula.stories.v1 import projects_pb2, projects_pb2_grpc, stories_pb2
from fabula.users.v1 import events_pb2 as users_events
from fabula_common.db import Database
from fabula_common.messaging.bus import subject_for
from fabula_common.messaging.headers import MSG_ID_HEADER
from fabula_common.money import from_money, to_money
from fabula_common.testing import free_port, running_app
from fabula_stories.app import create_app
from fabula_stories.projects.models import Narrative, Project
from fabula_stories.settings import Settings
from sqlalchemy import func, select

Stub = projects_pb2_grpc.ProjectsServiceStub
SHORT_STORY = jobs_pb2.PRODUCTION_TYPE_SHORT_STORY
NOVELLA = jobs_pb2.PRODUCTION_TYPE_NOVELLA
TEXT = (
    "## The Harbour\n\nThe ferry left at dawn.\n\nNobody was aboard.\n\n"
    "## The Island\n\nMara waited on the pier. \"Late again,\" she said.\n"
)


@pytest.fixture(scope="module")
def settings(test_database, test_stream) -> Settings:
    return Settings(grpc_port=free_port(), generation_addr=f"127.0.0.1:{free_port()}")


@pytest.fixture(scope="module")
async def projects(settings) -> AsyncIterator[Stub]:
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield Stub(channel)


@pytest.fixture(scope="module")
async def db(test_database) -> AsyncIterator[Database]:
    database = Database(Settings())
    yield database
    await database.dispose()


@pytest.fixture
async def publish(settings) -> AsyncIterator[Callable[..., Awaitable[None]]]:
    """Publish an event as a peer would (a fresh message id each time, so a
    repeat is a redelivery past JetStream's duplicate window)."""
    nc = await nats.connect(settings.nats_url, connect_timeout=2)
    js = nc.jetstream()

    async def send(subject: str, event) -> None:
        await js.publish(
            subject, event.SerializeToString(), headers={MSG_ID_HEADER: uuid.uuid4().hex}
        )

    yield send
    await nc.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def new_project(projects: Stub, user_id: str, **fields) -> projects_pb2.Project:
    fields.setdefault("name", "Harbour tales")
    return await projects.CreateProject(projects_pb2.CreateProjectRequest(user_id=user_id, **fields))


def job_completed(project: projects_pb2.Project, **fields) -> generation_events.JobCompleted:
    fields.setdefault("job_id", str(uuid.uuid4()))
    fields.setdefault("title", "The Silent Ferry")
    fields.setdefault("production_type", SHORT_STORY)
    fields.setdefault("genre", "mystery")
    fields.setdefault("text", TEXT)
    fields.setdefault("word_count", 3000)
    fields.setdefault("cost", to_money(Decimal("0.0125")))
    fields.setdefault("tokens_used", 4200)
    fields.setdefault("overall_quality_score", 0.72)
    return generation_events.JobCompleted(
        event_id=str(uuid.uuid4()),
        user_id=project.user_id,
        project_id=project.id,
        quality_metrics={"readability": 64.5, "lexical_diversity": 0.58},
        **fields,
    )


async def narratives_of_job(db: Database, job_id: str) -> int:
    async with db.session_scope() as session:
        return await session.scalar(
            select(func.count()).select_from(Narrative).where(Narrative.job_id == uuid.UUID(job_id))
        )


async def deliver(publish, settings, db, event, times: int = 1) -> None:
    """Publish the event and wait until its narrative is stored."""
    subject = subject_for(settings, "generation", "job_completed")
    for _ in range(times):
        await publish(subject, event)

    async def stored() -> bool:
        return await narratives_of_job(db, event.job_id) == 1

    await eventually(stored)


async def only_narrative(projects: Stub, project: projects_pb2.Project) -> projects_pb2.Narrative:
    page = await projects.ListNarratives(
        projects_pb2.ListNarrativesRequest(user_id=project.user_id, project_id=project.id)
    )
    [narrative] = page.items
    return narrative


# --- Projects ------------------------------------------------------------------------


async def test_a_project_is_created_read_changed_listed_and_deleted(projects: Stub):
    user_id = str(uuid.uuid4())
    created = await new_project(
        projects,
        user_id,
        name="  Harbour tales ",
        description="Stories of one harbour town.",
        default_genre="mystery",
        default_production_type=NOVELLA,
        world_notes="The ferry runs at dawn only.",
    )
    assert created.name == "Harbour tales"
    assert (created.default_genre, created.default_production_type) == ("mystery", NOVELLA)
    assert (created.narrative_count, created.total_word_count) == (0, 0)
    assert from_money(created.total_cost) == 0

    ref = projects_pb2.ProjectRef(user_id=user_id, project_id=created.id)
    assert await projects.GetProject(ref) == created

    changed = await projects.UpdateProject(
        projects_pb2.UpdateProjectRequest(
            user_id=user_id,
            project_id=created.id,
            fields=["name", "default_production_type"],
            name="Island tales",
            description="ignored: not in fields",
            default_production_type=jobs_pb2.PRODUCTION_TYPE_UNSPECIFIED,
        )
    )
    assert changed.name == "Island tales"
    assert changed.description == "Stories of one harbour town."
    assert changed.default_production_type == jobs_pb2.PRODUCTION_TYPE_UNSPECIFIED
    assert changed.updated_at.ToDatetime() >= created.updated_at.ToDatetime()

    await projects.DeleteProject(ref)
    assert (await refused(projects.GetProject(ref))).code() == grpc.StatusCode.NOT_FOUND
    assert (await refused(projects.DeleteProject(ref))).code() == grpc.StatusCode.NOT_FOUND


async def test_projects_are_listed_newest_first_a_page_at_a_time(projects: Stub):
    user_id = str(uuid.uuid4())
    names = [f"Project {n}" for n in range(5)]
    for name in names:
        await new_project(projects, user_id, name=name)
    seen, cursor = [], ""
    while True:
        page = await projects.ListProjects(
            projects_pb2.ListProjectsRequest(user_id=user_id, limit=2, cursor=cursor)
        )
        seen += [project.name for project in page.items]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == list(reversed(names))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "   "}, "name is required"),
        ({"name": "x" * 201}, "name must be at most 200 characters"),
        ({"description": "x" * 4001}, "description must be at most 4000 characters"),
        ({"default_genre": "x" * 51}, "default_genre must be at most 50 characters"),
        ({"world_notes": "x" * 10_001}, "world_notes must be at most 10000 characters"),
        ({"default_production_type": 42}, "production_type 42 is not known"),
    ],
)
async def test_a_bad_project_is_refused_naming_the_field(projects: Stub, fields, message):
    error = await refused(new_project(projects, str(uuid.uuid4()), **fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()


async def test_an_update_names_known_fields(projects: Stub):
    user_id = str(uuid.uuid4())
    project = await new_project(projects, user_id)
    for fields, message in (([], "at least one field"), (["narrative_count"], "cannot be changed")):
        error = await refused(
            projects.UpdateProject(
                projects_pb2.UpdateProjectRequest(
                    user_id=user_id, project_id=project.id, fields=fields
                )
            )
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in error.details()


async def test_another_users_project_and_narratives_are_not_found(
    projects: Stub, publish, settings, db
):
    owner, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    project = await new_project(projects, owner)
    event = job_completed(project)
    await deliver(publish, settings, db, event)
    narrative = await only_narrative(projects, project)

    calls = [
        projects.GetProject(projects_pb2.ProjectRef(user_id=stranger, project_id=project.id)),
        projects.DeleteProject(projects_pb2.ProjectRef(user_id=stranger, project_id=project.id)),
        projects.UpdateProject(
            projects_pb2.UpdateProjectRequest(
                user_id=stranger, project_id=project.id, fields=["name"], name="Mine"
            )
        ),
        projects.ListNarratives(
            projects_pb2.ListNarrativesRequest(user_id=stranger, project_id=project.id)
        ),
        projects.GetNarrative(
            projects_pb2.GetNarrativeRequest(
                user_id=stranger, narrative_id=narrative.id, count_view=True
            )
        ),
        projects.ListNarrativeVersions(
            projects_pb2.NarrativeRef(user_id=stranger, narrative_id=narrative.id)
        ),
        projects.GetProject(projects_pb2.ProjectRef(user_id=owner, project_id="not-a-uuid")),
    ]
    for call in calls:
        assert (await refused(call)).code() == grpc.StatusCode.NOT_FOUND
    export = projects.ExportNarrative(
        projects_pb2.ExportNarrativeRequest(
            user_id=stranger, narrative_id=narrative.id, format=stories_pb2.EXPORT_FORMAT_TEXT
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [chunk async for chunk in export]
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # Nothing was counted nor changed by the stranger.
    mine = await projects.GetNarrative(
        projects_pb2.GetNarrativeRequest(user_id=owner, narrative_id=narrative.id)
    )
    assert (mine.view_count, mine.download_count) == (0, 0)
    assert (
        await projects.GetProject(projects_pb2.ProjectRef(user_id=owner, project_id=project.id))
    ).name == project.name


# --- JobCompleted --------------------------------------------------------------------


async def test_a_completed_job_becomes_one_narrative_even_when_delivered_twice(
    projects: Stub, publish, settings, db
):
    user_id = str(uuid.uuid4())
    project = await new_project(projects, user_id)
    event = job_completed(project)
    await deliver(publish, settings, db, event, times=2)
    # The same job under another event id (a re-publication) stores nothing either.
    again = generation_events.JobCompleted()
    again.CopyFrom(event)
    again.event_id = str(uuid.uuid4())
    await publish(subject_for(settings, "generation", "job_completed"), again)
    # A later job's narrative shows the repeats were consumed before it.
    later = job_completed(project, word_count=1000, cost=to_money(Decimal("0.005")))
    await deliver(publish, settings, db, later)

    assert await narratives_of_job(db, event.job_id) == 1
    page = await projects.ListNarratives(
        projects_pb2.ListNarrativesRequest(user_id=user_id, project_id=project.id)
    )
    assert [n.job_id for n in page.items] == [later.job_id, event.job_id]
    first = page.items[1]
    assert (first.version, first.parent_narrative_id, first.root_narrative_id) == (
        1, "", first.id,
    )
    assert (first.title, first.genre, first.production_type) == (
        "The Silent Ferry", "mystery", SHORT_STORY,
    )
    assert first.text == ""  # lists carry no texts
    assert dict(first.quality_metrics) == {"readability": 64.5, "lexical_diversity": 0.58}
    assert (first.word_count, first.tokens_used) == (3000, 4200)
    assert from_money(first.generation_cost) == Decimal("0.0125")

    totals = await projects.GetProject(
        projects_pb2.ProjectRef(user_id=user_id, project_id=project.id)
    )
    assert (totals.narrative_count, totals.total_word_count) == (2, 4000)
    assert from_money(totals.total_cost) == Decimal("0.0175")


async def test_revisions_are_the_next_versions_of_their_lineage(
    projects: Stub, publish, settings, db
):
    user_id = str(uuid.uuid4())
    project = await new_project(projects, user_id)
    first = job_completed(project)
    await deliver(publish, settings, db, first)
    v1 = await only_narrative(projects, project)
    second = job_completed(project, parent_narrative_id=v1.id, title="The Silent Ferry, revised")
    await deliver(publish, settings, db, second)
    page = await projects.ListNarratives(
        projects_pb2.ListNarrativesRequest(user_id=user_id, project_id=project.id)
    )
    v2 = page.items[0]
    third = job_completed(project, parent_narrative_id=v2.id)
    await deliver(publish, settings, db, third)

    versions = await projects.ListNarrativeVersions(
        projects_pb2.NarrativeRef(user_id=user_id, narrative_id=v2.id)
    )
    assert [n.version for n in versions.versions] == [1, 2, 3]
    assert [n.job_id for n in versions.versions] == [first.job_id, second.job_id, third.job_id]
    assert {n.root_narrative_id for n in versions.versions} == {v1.id}
    assert [n.parent_narrative_id for n in versions.versions] == ["", v1.id, v2.id]
    assert all(n.text == "" for n in versions.versions)


async def test_a_narrative_for_a_deleted_project_or_user_is_dropped(
    projects: Stub, publish, settings, db
):
    user_id = str(uuid.uuid4())
    project = await new_project(projects, user_id)
    await projects.DeleteProject(projects_pb2.ProjectRef(user_id=user_id, project_id=project.id))
    orphan = job_completed(project)
    subject = subject_for(settings, "generation", "job_completed")
    await publish(subject, orphan)

    gone_user = str(uuid.uuid4())
    gone_project = await new_project(projects, gone_user)
    await publish(
        subject_for(settings, "users", "user_deleted"),
        users_events.UserDeleted(event_id=str(uuid.uuid4()), user_id=gone_user),
    )

    async def user_deleted() -> bool:
        async with db.session_scope() as session:
            return not await session.scalar(
                select(func.count()).select_from(Project).where(
                    Project.user_id == uuid.UUID(gone_user)
                )
            )

    await eventually(user_deleted)
    for_the_deleted = job_completed(gone_project)
    await publish(subject, for_the_deleted)

    # A later event on the same subject is handled after those two.
    live = await new_project(projects, str(uuid.uuid4()))
    await deliver(publish, settings, db, job_completed(live))
    assert await narratives_of_job(db, orphan.job_id) == 0
    assert await narratives_of_job(db, for_the_deleted.job_id) == 0


async def test_deleting_a_user_deletes_their_projects_and_narratives(
    projects: Stub, publish, settings, db
):
    user_id = str(uuid.uuid4())
    project = await new_project(projects, user_id)
    event = job_completed(project)
    await deliver(publish, settings, db, event)
    await publish(
        subject_for(settings, "users", "user_deleted"),
        users_events.UserDeleted(event_id=str(uuid.uuid4()), user_id=user_id),
    )

    async def forgotten() -> bool:
        async with db.session_scope() as session:
            left = 0
            for model in (Project, Narrative):
                left += await session.scalar(
                    select(func.count()).select_from(model).where(
                        model.user_id == uuid.UUID(user_id)
                    )
                )
            return left == 0

    await eventually(forgotten)
    error = await refused(
        projects.CreateProject(projects_pb2.CreateProjectRequest(user_id=user_id, name="Back"))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


# --- Reading and exporting ----------------------------------------------------------------


async def test_reading_counts_views_and_exporting_counts_downloads_and_formats(
    projects: Stub, publish, settings, db
):
    user_id = str(uuid.uuid4())
    project = await new_project(projects, user_id)
    await deliver(publish, settings, db, job_completed(project))
    listed = await only_narrative(projects, project)

    get = projects_pb2.GetNarrativeRequest(user_id=user_id, narrative_id=listed.id)
    peek = await projects.GetNarrative(get)
    assert (peek.text, peek.view_count) == (TEXT, 0)
    get.count_view = True
    views = await asyncio.gather(*(projects.GetNarrative(get) for _ in range(5)))
    assert sorted(n.view_count for n in views) == [1, 2, 3, 4, 5]

    async def export(fmt: int) -> tuple[stories_pb2.ExportHeader, bytes]:
        chunks = [
            chunk
            async for chunk in projects.ExportNarrative(
                projects_pb2.ExportNarrativeRequest(
                    user_id=user_id, narrative_id=listed.id, format=fmt, author_name="Ada Writer"
                )
            )
        ]
        return chunks[0].header, b"".join(chunk.data for chunk in chunks[1:])

    header, markdown = await export(stories_pb2.EXPORT_FORMAT_MARKDOWN)
    assert header.filename == "the-silent-ferry.md"
    assert header.size_bytes == len(markdown)
    text = markdown.decode()
    assert text.startswith("# The Silent Ferry\n")
    assert "Author: Ada Writer" in text
    assert "## The Harbour\n\nThe ferry left at dawn.\n\nNobody was aboard." in text
    assert "## The Island\n\nMara waited on the pier." in text

    header, book = await export(stories_pb2.EXPORT_FORMAT_EPUB)
    assert header.content_type == "application/epub+zip"
    with zipfile.ZipFile(io.BytesIO(book)) as archive:
        chapters = sorted(name for name in archive.namelist() if "part-" in name)
        assert len(chapters) == 2
        assert b"The Island" in archive.read(chapters[1])
    await export(stories_pb2.EXPORT_FORMAT_MARKDOWN)

    after = await projects.GetNarrative(
        projects_pb2.GetNarrativeRequest(user_id=user_id, narrative_id=listed.id)
    )
    assert (after.view_count, after.download_count) == (5, 3)
    assert list(after.export_formats) == ["epub", "md"]
