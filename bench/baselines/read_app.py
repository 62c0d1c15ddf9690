"""The P1 baseline: `GET /v1/stories/{id}` as one FastAPI + asyncpg process
would serve it, with nothing between the HTTP request and Postgres. The same
work as the gateway + stories path: the same JWT check, the same two queries
(the story by id and owner, its segments in order), the same response model,
so the JSON is byte for byte the gateway's (the benchmark checks).

    BASELINE_DATABASE_URL=postgresql://... JWT_SECRET=... \\
        python -m uvicorn bench.baselines.read_app:app --port 8001
"""

from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from fabula_common.settings import TokenSettings
from fabula_common.tokens import verify_access_token
from fabula_gateway.stories.schemas import GeneratedBy, Segment, Story
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

STORY = """SELECT id, title, genre, characters, opening_line, is_complete, created_at, updated_at,
                  memory, authors_note, is_favorite, head_segment_id
           FROM stories.stories WHERE id = $1 AND user_id = $2"""
# The followed path, each segment with how many versions its position has.
SEGMENTS = """SELECT s.id, s.position, s.text, s.kind, s.provider, s.model, s.is_language_model,
                     s.created_at, s.parent_id, s.word_count, s.edited_at IS NOT NULL AS edited,
                     count(*) AS alternative_count,
                     count(*) FILTER (WHERE (a.created_at, a.id) <= (s.created_at, s.id))
                       AS alternative_number
              FROM stories.segments s
              JOIN stories.segments a
                ON a.story_id = s.story_id AND a.parent_id IS NOT DISTINCT FROM s.parent_id
              WHERE s.story_id = $1 AND s.on_path
              GROUP BY s.id ORDER BY s.position"""


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.settings = TokenSettings()
    app.state.pool = await asyncpg.create_pool(os.environ["BASELINE_DATABASE_URL"], min_size=5, max_size=15)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)
bearer = HTTPBearer(auto_error=False)


async def user_id(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> uuid.UUID:
    if credentials is None:
        raise HTTPException(401)
    try:
        return uuid.UUID(verify_access_token(request.app.state.settings, credentials.credentials).user_id)
    except Exception:  # noqa: BLE001 - any bad token is a 401 here
        raise HTTPException(401) from None


@app.get("/v1/stories/{story_id}", response_model=Story)
async def get_story(story_id: uuid.UUID, owner: Annotated[uuid.UUID, Depends(user_id)], request: Request) -> Story:
    async with request.app.state.pool.acquire() as connection:
        story = await connection.fetchrow(STORY, story_id, owner)
        if story is None:
            raise HTTPException(404)
        segments = await connection.fetch(SEGMENTS, story_id)
    return Story(
        id=str(story["id"]),
        title=story["title"],
        genre=story["genre"],
        characters=list(story["characters"]),
        opening_line=story["opening_line"],
        is_complete=story["is_complete"],
        memory=story["memory"],
        authors_note=story["authors_note"],
        is_favorite=story["is_favorite"],
        head_segment_id=str(story["head_segment_id"]) if story["head_segment_id"] else None,
        segment_count=len(segments),
        created_at=story["created_at"],
        updated_at=story["updated_at"],
        segments=[
            Segment(
                id=str(s["id"]),
                position=s["position"],
                text=s["text"],
                kind=s["kind"],
                created_at=s["created_at"],
                generated_by=GeneratedBy(
                    provider=s["provider"], model=s["model"], is_language_model=s["is_language_model"]
                ),
                parent_id=str(s["parent_id"]) if s["parent_id"] else None,
                alternative_count=s["alternative_count"],
                alternative_number=s["alternative_number"],
                edited=s["edited"],
                word_count=s["word_count"],
            )
            for s in segments
        ],
    )
