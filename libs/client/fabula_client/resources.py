"""One method per API operation, grouped by resource, written once for both
clients: each method describes its call (`Call`) and hands it to the client,
which answers it synchronously (`Fabula`) or as an awaitable (`AsyncFabula`);
streams are iterators or async iterators.

Adding a resource: a class here with its methods, and one line in
`BaseClient.__init__`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import ServerSentEvent

from fabula_client._core import Call, Stream, event_data, model_answer
from fabula_client.models import (
    ApiKeyList,
    ClarifyingQuestions,
    Conversation,
    ConversationPage,
    CouncilEvent,
    CreatedApiKey,
    Job,
    JobEvent,
    JobPage,
    Message,
    Profile,
    Project,
    ProjectPage,
    Segment,
    SegmentWritten,
    Story,
    StoryPage,
    StoryWritten,
    TextDelta,
    Tokens,
    Usage,
    UsageBreakdown,
    UsageLogPage,
)

if TYPE_CHECKING:
    from fabula_client.client import BaseClient


class Resource:
    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def _call(self, call: Call) -> Any:
        return self._client._request(call)

    def _stream(self, call: Call) -> Any:
        return self._client._stream(call)


# --- stream decoders ----------------------------------------------------------


def _story_event(sse: ServerSentEvent) -> TextDelta | SegmentWritten | StoryWritten | None:
    data = event_data(sse)
    if sse.event == "token":
        return TextDelta.model_validate(data)
    if sse.event == "segment":
        return SegmentWritten(segment=Segment.model_validate(data))
    if sse.event == "story":
        return StoryWritten(story=Story.model_validate(data))
    return None


STORY_STREAM = Stream(_story_event, ends=lambda item: isinstance(item, SegmentWritten))
CREATE_STREAM = Stream(_story_event, ends=lambda item: isinstance(item, StoryWritten))


def _job_event(sse: ServerSentEvent) -> JobEvent | None:
    data = event_data(sse)
    return JobEvent.model_validate(data) if data else None


JOB_STREAM = Stream(_job_event, ends=lambda event: event.is_terminal, resumable=True)


def _council_event(sse: ServerSentEvent) -> CouncilEvent:
    return CouncilEvent(event=sse.event, data=event_data(sse))


def _council_ends(event: CouncilEvent) -> bool:
    return event.event == "questions" or (
        event.event == "message" and event.data.get("role") == "assistant"
    )


COUNCIL_STREAM = Stream(_council_event, ends=_council_ends)


def _council_answer(response: httpx.Response) -> Message | ClarifyingQuestions:
    body = response.json()
    if "role" not in body and "questions" in body:
        return ClarifyingQuestions.model_validate(body)
    return Message.model_validate(body)


# --- resources ----------------------------------------------------------------


class Auth(Resource):
    """Accounts: the tokens these return are kept by the client and refreshed
    on their own."""

    def _tokens(self, response: httpx.Response) -> Tokens:
        return self._client._core.credentials.accept(Tokens.model_validate(response.json()))

    def register(
        self, email: str, password: str, full_name: str | None = None, *, idempotency_key: str | None = None
    ) -> Tokens:
        body = {"email": email, "password": password, "full_name": full_name}
        return self._call(
            Call.once("POST", "/v1/auth/register", idempotency_key, body=body,
                      authenticated=False, answer=self._tokens)
        )

    def login(self, email: str, password: str) -> Tokens:
        body = {"email": email, "password": password}
        # Logging in twice does no harm (two sessions): safe to retry.
        return self._call(
            Call("POST", "/v1/auth/login", body=body, idempotent=True, authenticated=False,
                 answer=self._tokens)
        )

    def refresh(self) -> Tokens:
        tokens = self._client._core.credentials.tokens
        if tokens is None:
            raise ValueError("no tokens to refresh: log in first")
        body = {"refresh_token": tokens.refresh_token}
        return self._call(
            Call("POST", "/v1/auth/refresh", body=body, authenticated=False, answer=self._tokens)
        )


class Me(Resource):
    def get(self) -> Profile:
        return self._call(Call("GET", "/v1/me", idempotent=True, answer=model_answer(Profile)))


class ApiKeys(Resource):
    def create(self, name: str, scopes: list[str] = ["write"], expires_at: str | None = None) -> CreatedApiKey:  # noqa: B006
        body = {"name": name, "scopes": list(scopes), "expires_at": expires_at}
        return self._call(
            Call("POST", "/v1/me/api-keys", body=body, answer=model_answer(CreatedApiKey))
        )

    def list(self) -> ApiKeyList:
        return self._call(
            Call("GET", "/v1/me/api-keys", idempotent=True, answer=model_answer(ApiKeyList))
        )

    def revoke(self, api_key_id: str) -> None:
        return self._call(Call("DELETE", f"/v1/me/api-keys/{api_key_id}", idempotent=True))


class Stories(Resource):
    def create(
        self,
        genre: str,
        *,
        title: str | None = None,
        characters: list[str] | None = None,
        opening_line: str | None = None,
        stream: bool = False,
        idempotency_key: str | None = None,
    ) -> Any:
        """Start a story: it comes with its opening (and a title when none is given).
        With stream=True: an iterator of TextDelta (the opening as it is written)
        ending with StoryWritten."""
        body = {"genre": genre, "title": title, "characters": characters or [],
                "opening_line": opening_line}
        call = Call.once(
            "POST", "/v1/stories", idempotency_key, body=body, answer=model_answer(Story),
            stream=CREATE_STREAM if stream else None,
        )
        return self._stream(call) if stream else self._call(call)

    def get(self, story_id: str) -> Story:
        return self._call(
            Call("GET", f"/v1/stories/{story_id}", idempotent=True, answer=model_answer(Story))
        )

    def list(
        self,
        *,
        limit: int = 20,
        cursor: str | None = None,
        genre: str | None = None,
        is_complete: bool | None = None,
        favorite: bool | None = None,
    ) -> StoryPage:
        params = {"limit": limit, "cursor": cursor, "genre": genre,
                  "is_complete": _flag(is_complete), "favorite": _flag(favorite)}
        return self._call(
            Call("GET", "/v1/stories", params=params, idempotent=True, answer=model_answer(StoryPage))
        )

    def search(self, query: str, *, limit: int = 20, cursor: str | None = None) -> StoryPage:
        """Full-text search, best match first (web search syntax: words, "a phrase", -word)."""
        params = {"q": query, "limit": limit, "cursor": cursor}
        return self._call(
            Call("GET", "/v1/stories", params=params, idempotent=True, answer=model_answer(StoryPage))
        )

    def delete(self, story_id: str) -> None:
        return self._call(Call("DELETE", f"/v1/stories/{story_id}", idempotent=True))

    def continue_(
        self,
        story_id: str,
        direction: str | None = None,
        *,
        after_segment_id: str | None = None,
        stream: bool = False,
        idempotency_key: str | None = None,
    ) -> Any:
        """The next segment. With stream=True: an iterator of TextDelta (text as
        it is written) ending with SegmentWritten. A busy story is retried."""
        body = {"direction": direction, "after_segment_id": after_segment_id}
        call = Call.once(
            "POST", f"/v1/stories/{story_id}/continue", idempotency_key, body=body,
            answer=model_answer(Segment), stream=STORY_STREAM if stream else None,
        )
        return self._stream(call) if stream else self._call(call)

    def regenerate(
        self,
        story_id: str,
        segment_id: str,
        direction: str | None = None,
        *,
        stream: bool = False,
        idempotency_key: str | None = None,
    ) -> Any:
        """Another version of a segment (an alternative, now followed); streams like continue_."""
        call = Call.once(
            "POST", f"/v1/stories/{story_id}/segments/{segment_id}/regenerate", idempotency_key,
            body={"direction": direction}, answer=model_answer(Segment),
            stream=STORY_STREAM if stream else None,
        )
        return self._stream(call) if stream else self._call(call)

    def end(self, story_id: str, direction: str | None = None, *, idempotency_key: str | None = None) -> Story:
        """Write the ending: the story is then complete."""
        return self._call(
            Call.once("POST", f"/v1/stories/{story_id}/end", idempotency_key,
                      body={"direction": direction}, answer=model_answer(Story))
        )

    def export(self, story_id: str, format: str = "md") -> bytes:
        """The story as a file: `md`, `txt` or `epub` (bytes)."""
        return self._call(
            Call("GET", f"/v1/stories/{story_id}/export", params={"format": format},
                 idempotent=True, answer=lambda response: response.content)
        )


class Projects(Resource):
    def create(self, name: str, **fields: Any) -> Project:
        """Fields: description, default_genre, default_production_type, world_notes."""
        return self._call(
            Call("POST", "/v1/projects", body={"name": name, **fields}, answer=model_answer(Project))
        )

    def get(self, project_id: str) -> Project:
        return self._call(
            Call("GET", f"/v1/projects/{project_id}", idempotent=True, answer=model_answer(Project))
        )

    def list(self, *, limit: int = 20, cursor: str | None = None) -> ProjectPage:
        return self._call(
            Call("GET", "/v1/projects", params={"limit": limit, "cursor": cursor},
                 idempotent=True, answer=model_answer(ProjectPage))
        )

    def delete(self, project_id: str) -> None:
        return self._call(Call("DELETE", f"/v1/projects/{project_id}", idempotent=True))


class Jobs(Resource):
    def submit(self, project_id: str, premise: str, **brief: Any) -> Job:
        """Queue a production brief (fields: production_type, genre, characters,
        setting, tone, target_words); watch it with watch()."""
        return self._call(
            Call("POST", f"/v1/projects/{project_id}/jobs", body={"premise": premise, **brief},
                 answer=model_answer(Job))
        )

    def get(self, job_id: str) -> Job:
        return self._call(Call("GET", f"/v1/jobs/{job_id}", idempotent=True, answer=model_answer(Job)))

    def list(
        self, *, project_id: str | None = None, status: str | None = None, limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        params = {"project_id": project_id, "status": status, "limit": limit, "cursor": cursor}
        return self._call(
            Call("GET", "/v1/jobs", params=params, idempotent=True, answer=model_answer(JobPage))
        )

    def cancel(self, job_id: str) -> Job:
        return self._call(Call("POST", f"/v1/jobs/{job_id}/cancel", idempotent=True,
                               answer=model_answer(Job)))

    def retry(self, job_id: str, from_stage: str | None = None) -> Job:
        body = {"from_stage": from_stage} if from_stage else None
        return self._call(Call("POST", f"/v1/jobs/{job_id}/retry", body=body, answer=model_answer(Job)))

    def watch(self, job_id: str, *, after: int | None = None) -> Any:
        """Iterator of JobEvent to the terminal one (`done`, `failed`,
        `cancelled`); a broken connection resumes with Last-Event-ID, so no
        event is lost or repeated."""
        return self._stream(
            Call("GET", f"/v1/jobs/{job_id}/events", params={"after": after}, idempotent=True,
                 stream=JOB_STREAM)
        )


class Conversations(Resource):
    def create(self, title: str = "") -> Conversation:
        return self._call(Call("POST", "/v1/conversations", body={"title": title},
                               answer=model_answer(Conversation)))

    def get(self, conversation_id: str) -> Conversation:
        return self._call(Call("GET", f"/v1/conversations/{conversation_id}", idempotent=True,
                               answer=model_answer(Conversation)))

    def list(self, *, limit: int = 20, cursor: str | None = None, starred: bool | None = None) -> ConversationPage:
        params = {"limit": limit, "cursor": cursor, "starred": _flag(starred)}
        return self._call(Call("GET", "/v1/conversations", params=params, idempotent=True,
                               answer=model_answer(ConversationPage)))

    def update(self, conversation_id: str, *, title: str | None = None, starred: bool | None = None) -> Conversation:
        body = {k: v for k, v in {"title": title, "starred": starred}.items() if v is not None}
        return self._call(Call("PATCH", f"/v1/conversations/{conversation_id}", body=body,
                               idempotent=True, answer=model_answer(Conversation)))

    def delete(self, conversation_id: str) -> None:
        return self._call(Call("DELETE", f"/v1/conversations/{conversation_id}", idempotent=True))

    def ask(self, conversation_id: str, content: str, *, stream: bool = False) -> Any:
        """Ask the council: its Message (or the chairman's ClarifyingQuestions).
        With stream=True: an iterator of CouncilEvent, stage by stage."""
        call = Call("POST", f"/v1/conversations/{conversation_id}/messages",
                    body={"content": content}, answer=_council_answer,
                    stream=COUNCIL_STREAM if stream else None)
        return self._stream(call) if stream else self._call(call)

    def follow_up(self, conversation_id: str, answers: list[str], *, stream: bool = False) -> Any:
        """Answer the chairman's questions; the council then deliberates (as ask())."""
        call = Call("POST", f"/v1/conversations/{conversation_id}/follow-up",
                    body={"answers": answers}, answer=_council_answer,
                    stream=COUNCIL_STREAM if stream else None)
        return self._stream(call) if stream else self._call(call)


class UsageResource(Resource):
    def get(self) -> Usage:
        return self._call(Call("GET", "/v1/usage", idempotent=True, answer=model_answer(Usage)))

    def logs(self, *, limit: int = 20, cursor: str | None = None) -> UsageLogPage:
        return self._call(Call("GET", "/v1/usage/logs", params={"limit": limit, "cursor": cursor},
                               idempotent=True, answer=model_answer(UsageLogPage)))

    def breakdown(self) -> UsageBreakdown:
        return self._call(Call("GET", "/v1/usage/breakdown", idempotent=True,
                               answer=model_answer(UsageBreakdown)))


def _flag(value: bool | None) -> str | None:
    return None if value is None else str(value).lower()
