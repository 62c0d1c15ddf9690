"""Finding stories: the search and filters of GET /v1/stories, and
GET /v1/stories/stats (stories service: ListStories, GetStoryStats)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fabula.stories.v1 import stories_pb2
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from fabula_gateway.dependencies import Clients, CurrentUserId
from fabula_gateway.openapi import problem_responses
from fabula_gateway.problems import VALIDATION_FAILED, ProblemError

# Registered before the stories router: /v1/stories/stats must not be taken
# for a story id by GET /v1/stories/{story_id}.
router = APIRouter(prefix="/v1/stories", tags=["stories"])

QUERY_MAX_LENGTH = 200


@dataclass(frozen=True)
class Search:
    """The search and filters of a story list; all absent: the plain list."""

    q: str | None
    genre: str | None
    is_complete: bool | None
    favorite: bool | None

    def apply(self, request: stories_pb2.ListStoriesRequest) -> None:
        if self.q:
            request.query = self.q
        if self.genre is not None:
            request.genre = self.genre
        if self.is_complete is not None:
            request.is_complete = self.is_complete
        if self.favorite is not None:
            request.is_favorite = self.favorite


async def _search(
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=QUERY_MAX_LENGTH,
            description="Full-text search over title, genre, characters and the text the "
            'story follows, in web search syntax: words, "a phrase", -excluded, or. English '
            "stemming (`ferries` finds `ferry`); common words alone find nothing. Results "
            "come best match first, each with a `search` hit.",
            examples=["lighthouse -storm"],
        ),
    ] = None,
    genre: Annotated[
        str | None,
        Query(min_length=1, max_length=50, description="Only this genre (any case)."),
    ] = None,
    is_complete: Annotated[
        bool | None, Query(description="Only complete (`true`) or unfinished (`false`) stories.")
    ] = None,
    favorite: Annotated[
        bool | None, Query(description="Only favourites (`true`) or the others (`false`).")
    ] = None,
) -> Search:
    if q is not None and not q.strip():
        raise ProblemError(VALIDATION_FAILED, "`q` must not be blank.")
    return Search(q=q, genre=genre, is_complete=is_complete, favorite=favorite)


SearchQuery = Annotated[Search, Depends(_search)]


class GenreStats(BaseModel):
    genre: str
    total: int
    completed: int
    words: int = Field(description="Words on the followed paths of this genre's stories.")


class StoryStats(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "total": 4,
                    "completed": 2,
                    "favorites": 1,
                    "average_segments": 1.75,
                    "total_words": 16,
                    "genres": [
                        {"genre": "mystery", "total": 3, "completed": 1, "words": 12},
                        {"genre": "romance", "total": 1, "completed": 1, "words": 4},
                    ],
                }
            ]
        }
    )

    total: int = Field(description="Stories.")
    completed: int = Field(description="Stories that have been ended.")
    favorites: int
    average_segments: float = Field(
        description="Segments on the followed path, averaged over the stories; 0 without any."
    )
    total_words: int = Field(description="Words on the followed paths of all stories.")
    genres: list[GenreStats] = Field(
        description="Per genre (case-insensitive), most stories first."
    )


@router.get(
    "/stats",
    operation_id="get_story_stats",
    response_model=StoryStats,
    summary="Story statistics",
    description="How many stories the user has, completed and favourite, how long they "
    "are, and per genre.",
    responses=problem_responses(401, 500, 503),
)
async def get_story_stats(user_id: CurrentUserId, clients: Clients) -> StoryStats:
    reply = await clients.stories.GetStoryStats(stories_pb2.GetStoryStatsRequest(user_id=user_id))
    return StoryStats(
        total=reply.total,
        completed=reply.completed,
        favorites=reply.favorites,
        average_segments=reply.average_segments,
        total_words=reply.total_words,
        genres=[
            GenreStats(genre=g.genre, total=g.total, completed=g.completed, words=g.words)
            for g in reply.genres
        ],
    )
