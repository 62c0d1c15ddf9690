"""0008_shaping on data: stories written before it become single-path trees
(each segment follows the one before it, the head is the last, all on the
path, words counted), and going back keeps each story's followed path."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from fabula_common import migrations
from fabula_common.provision import drop_database, provision, service_database_url

SERVICE = "stories"
BEFORE, SHAPING = "0007_leaving", "0008_shaping"
TEXTS = ["The fog came early.", "  Mara  lit the lamp\nat dusk. ", "And the ship came home."]


@pytest.fixture
async def database(admin_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A database of its own, with only the stories service provisioned."""
    name = f"fabula_test_shaping_migration_{uuid.uuid4().hex[:8]}"
    await provision(admin_url, name, services=(SERVICE,))
    url = service_database_url(admin_url, name, SERVICE)
    monkeypatch.setenv(f"{SERVICE.upper()}_DATABASE_URL", url)
    yield url.replace("postgresql+asyncpg://", "postgresql://", 1)
    await drop_database(admin_url, name)


async def migrate(direction, revision: str) -> None:
    await asyncio.to_thread(direction, SERVICE, revision)


async def write_story_before_shaping(conn: asyncpg.Connection, texts: list[str]) -> uuid.UUID:
    story_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO stories.stories (id, user_id, title, genre) VALUES ($1, $2, 'Fog', 'mystery')",
        story_id,
        uuid.uuid4(),
    )
    for position, text in enumerate(texts, start=1):
        kind = "opening" if position == 1 else "continuation"
        await conn.execute(
            """
            INSERT INTO stories.segments
                (id, story_id, position, kind, text, provider, model, is_language_model,
                 generation_id, created_at)
            VALUES ($1, $2, $3, $4, $5, 'offline', 'offline-v1', false, $6,
                    now() + make_interval(secs => $7))
            """,
            uuid.uuid4(),
            story_id,
            position,
            kind,
            text,
            str(uuid.uuid4()),
            float(position),
        )
    return story_id


async def segments(conn: asyncpg.Connection, story_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM stories.segments WHERE story_id = $1 ORDER BY position, created_at",
        story_id,
    )


async def test_stories_become_single_path_trees_and_keep_their_path_going_back(database: str):
    await migrate(migrations.upgrade, BEFORE)
    conn = await asyncpg.connect(database)
    try:
        story_id = await write_story_before_shaping(conn, TEXTS)
        empty_id = await write_story_before_shaping(conn, [])
        await conn.close()

        await migrate(migrations.upgrade, SHAPING)

        conn = await asyncpg.connect(database)
        rows = await segments(conn, story_id)
        assert [row["text"] for row in rows] == TEXTS
        assert [row["parent_id"] for row in rows] == [None, rows[0]["id"], rows[1]["id"]]
        assert all(row["on_path"] for row in rows)
        assert [row["word_count"] for row in rows] == [len(t.split()) for t in TEXTS] == [4, 6, 5]
        assert {row["text_source"] for row in rows} == {"generated"}
        heads = dict(await conn.fetch("SELECT id, head_segment_id FROM stories.stories"))
        assert heads == {story_id: rows[2]["id"], empty_id: None}

        # Shaped after the upgrade: an alternative of the last segment, which
        # the story follows, and a revision of the opening.
        alternative = uuid.uuid4()
        await conn.execute(
            "UPDATE stories.segments SET on_path = false WHERE id = $1", rows[2]["id"]
        )
        await conn.execute(
            """
            INSERT INTO stories.segments
                (id, story_id, parent_id, position, kind, text, provider, model,
                 is_language_model, generation_id, on_path)
            VALUES ($1, $2, $3, 3, 'continuation', 'Or the ship never came.', 'offline',
                    'offline-v1', false, 'g', true)
            """,
            alternative,
            story_id,
            rows[1]["id"],
        )
        await conn.execute(
            "UPDATE stories.stories SET head_segment_id = $1 WHERE id = $2", alternative, story_id
        )
        await conn.execute(
            """
            INSERT INTO stories.segment_revisions (id, segment_id, story_id, number, text, source)
            VALUES ($1, $2, $3, 1, 'An older opening.', 'generated')
            """,
            uuid.uuid4(),
            rows[0]["id"],
            story_id,
        )
        await conn.close()

        await migrate(migrations.downgrade, BEFORE)

        conn = await asyncpg.connect(database)
        after = await segments(conn, story_id)
        # The followed path, one segment per position, as the story showed it.
        assert [(row["position"], row["text"]) for row in after] == [
            (1, TEXTS[0]),
            (2, TEXTS[1]),
            (3, "Or the ship never came."),
        ]
        assert "parent_id" not in after[0].keys()
        assert await conn.fetchval("SELECT count(*) FROM stories.stories") == 2

        # And forward again: the path is a tree again with the right head.
        await conn.close()
        await migrate(migrations.upgrade, SHAPING)
        conn = await asyncpg.connect(database)
        again = await segments(conn, story_id)
        assert [row["parent_id"] for row in again] == [None, again[0]["id"], again[1]["id"]]
        head = await conn.fetchval(
            "SELECT head_segment_id FROM stories.stories WHERE id = $1", story_id
        )
        assert head == alternative
    finally:
        await conn.close()
