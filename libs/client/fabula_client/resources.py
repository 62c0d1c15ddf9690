"""One method per API operation, grouped by resource, written once for both
clients: each method describes its call (`Call`) and hands it to the client,
which answers it synchronously (`Fabula`) or as an awaitable (`AsyncFabula`);
streams are iterators or async iterators.

Adding a resource: a class here with its methods, and one line in
`BaseClient.__init__`.
"""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import httpx
from httpx_sse import ServerSentEvent

from fabula_client._core import Call, Flow, Sleep, Stream, event_data, model_answer
from fabula_client.models import (
    AccountExport,
    AdminUser,
    AdminUserDetail,
    AdminUserPage,
    Alternatives,
    ApiKeyList,
    AuditPage,
    BilingualTutorial,
    BranchList,
    Checkout,
    ClarifyingQuestions,
    Conversation,
    ConversationPage,
    CouncilEvent,
    CreatedApiKey,
    Drawing,
    DrawingPage,
    IdentityList,
    IdentityProviderList,
    InvoicePage,
    Job,
    JobEvent,
    JobPage,
    LoreEntry,
    LoreEntryList,
    Message,
    Narrative,
    NarrativePage,
    NarrativeVersions,
    Photo,
    PhotoPage,
    PhotoUpload,
    PictureStory,
    PictureStoryPage,
    PortalSession,
    Profile,
    Project,
    ProjectPage,
    Revisions,
    Segment,
    SegmentPage,
    SegmentWritten,
    SharedStory,
    ShareLink,
    SignInStart,
    Story,
    StoryContext,
    StoryPage,
    StoryStats,
    StorySuggestions,
    StorySummary,
    StoryWritten,
    Subscription,
    TextDelta,
    Tokens,
    Tutorial,
    TutorialList,
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

    def _flow(self, flow: Flow) -> Any:
        return self._client._flow(flow)


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

    def request_email_verification(self) -> None:
        """Mail the signed-in account a link (its token) to verify the address."""
        return self._call(Call("POST", "/v1/auth/verify-email/request", idempotent=True))

    def verify_email(self, token: str) -> Profile:
        return self._call(Call("POST", "/v1/auth/verify-email", body={"token": token},
                               idempotent=True, authenticated=False, answer=model_answer(Profile)))

    def request_password_reset(self, email: str) -> None:
        """Mail a reset token, if an account has this address (the answer never says)."""
        return self._call(Call("POST", "/v1/auth/password-reset/request", body={"email": email},
                               idempotent=True, authenticated=False))

    def reset_password(self, token: str, new_password: str) -> None:
        """Set a new password with a mailed token (every session is then signed out)."""
        return self._call(Call("POST", "/v1/auth/password-reset",
                               body={"token": token, "new_password": new_password},
                               authenticated=False))


class Me(Resource):
    def get(self) -> Profile:
        return self._call(Call("GET", "/v1/me", idempotent=True, answer=model_answer(Profile)))

    def update(self, **fields: Any) -> Profile:
        """Only the fields given change: full_name, avatar_url, birthdate (ISO date), locale."""
        return self._call(Call("PATCH", "/v1/me", body=fields, idempotent=True,
                               answer=model_answer(Profile)))

    def change_email(self, new_email: str, password: str) -> Profile:
        return self._call(Call("POST", "/v1/me/email",
                               body={"new_email": new_email, "password": password},
                               answer=model_answer(Profile)))


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
    @overload
    def create(
        self, genre: str, *, title: str | None = None, characters: list[str] | None = None,
        opening_line: str | None = None, stream: Literal[False] = False,
        idempotency_key: str | None = None,
    ) -> Story: ...
    @overload
    def create(
        self, genre: str, *, title: str | None = None, characters: list[str] | None = None,
        opening_line: str | None = None, stream: Literal[True],
        idempotency_key: str | None = None,
    ) -> Iterator[TextDelta | StoryWritten]: ...
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

    @overload
    def continue_(
        self, story_id: str, direction: str | None = None, *, after_segment_id: str | None = None,
        stream: Literal[False] = False, idempotency_key: str | None = None,
    ) -> Segment: ...
    @overload
    def continue_(
        self, story_id: str, direction: str | None = None, *, after_segment_id: str | None = None,
        stream: Literal[True], idempotency_key: str | None = None,
    ) -> Iterator[TextDelta | SegmentWritten]: ...
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

    @overload
    def regenerate(
        self, story_id: str, segment_id: str, direction: str | None = None, *,
        stream: Literal[False] = False, idempotency_key: str | None = None,
    ) -> Segment: ...
    @overload
    def regenerate(
        self, story_id: str, segment_id: str, direction: str | None = None, *,
        stream: Literal[True], idempotency_key: str | None = None,
    ) -> Iterator[TextDelta | SegmentWritten]: ...
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

    def update(self, story_id: str, **fields: Any) -> StorySummary:
        """Only the fields given change: title, memory, authors_note, is_favorite."""
        return self._call(Call("PATCH", f"/v1/stories/{story_id}", body=fields, idempotent=True,
                               answer=model_answer(StorySummary)))

    def stats(self) -> StoryStats:
        """Counts over all the account's stories, by genre too."""
        return self._call(Call("GET", "/v1/stories/stats", idempotent=True,
                               answer=model_answer(StoryStats)))

    def context(
        self, story_id: str, *, after_segment_id: str | None = None, direction: str | None = None
    ) -> StoryContext:
        """What the model would be given to write the next segment (nothing is written)."""
        params = {"after_segment_id": after_segment_id, "direction": direction}
        return self._call(Call("GET", f"/v1/stories/{story_id}/context", params=params,
                               idempotent=True, answer=model_answer(StoryContext)))


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

    def update(self, project_id: str, **fields: Any) -> Project:
        """Only the fields given change (name, description, default_genre,
        default_production_type, world_notes)."""
        return self._call(Call("PATCH", f"/v1/projects/{project_id}", body=fields,
                               idempotent=True, answer=model_answer(Project)))


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

    def watch(self, job_id: str, *, after: int | None = None) -> Iterator[JobEvent]:
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

    @overload
    def ask(
        self, conversation_id: str, content: str, *, stream: Literal[False] = False
    ) -> Message | ClarifyingQuestions: ...
    @overload
    def ask(
        self, conversation_id: str, content: str, *, stream: Literal[True]
    ) -> Iterator[CouncilEvent]: ...
    def ask(self, conversation_id: str, content: str, *, stream: bool = False) -> Any:
        """Ask the council: its Message (or the chairman's ClarifyingQuestions).
        With stream=True: an iterator of CouncilEvent, stage by stage."""
        call = Call("POST", f"/v1/conversations/{conversation_id}/messages",
                    body={"content": content}, answer=_council_answer,
                    stream=COUNCIL_STREAM if stream else None)
        return self._stream(call) if stream else self._call(call)

    @overload
    def follow_up(
        self, conversation_id: str, answers: Sequence[str], *, stream: Literal[False] = False
    ) -> Message | ClarifyingQuestions: ...
    @overload
    def follow_up(
        self, conversation_id: str, answers: Sequence[str], *, stream: Literal[True]
    ) -> Iterator[CouncilEvent]: ...
    def follow_up(self, conversation_id: str, answers: Sequence[str], *, stream: bool = False) -> Any:
        """Answer the chairman's questions; the council then deliberates (as ask())."""
        call = Call("POST", f"/v1/conversations/{conversation_id}/follow-up",
                    body={"answers": list(answers)}, answer=_council_answer,
                    stream=COUNCIL_STREAM if stream else None)
        return self._stream(call) if stream else self._call(call)

    @overload
    def resume(
        self, conversation_id: str, message_id: str, *, stream: Literal[False] = False
    ) -> Message | ClarifyingQuestions: ...
    @overload
    def resume(
        self, conversation_id: str, message_id: str, *, stream: Literal[True]
    ) -> Iterator[CouncilEvent]: ...
    def resume(self, conversation_id: str, message_id: str, *, stream: bool = False) -> Any:
        """Go on with an `interrupted` answer (the stages stored are kept); as ask()."""
        call = Call("POST", f"/v1/conversations/{conversation_id}/messages/{message_id}/resume",
                    answer=_council_answer, stream=COUNCIL_STREAM if stream else None)
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


# --- more resources: accounts, story tools, narratives, pictures, billing ------


class Account(Resource):
    """The account as a whole: everything it holds, and closing it."""

    def export(self, format: str = "json") -> Any:
        """Everything the account holds: an AccountExport, or with format="zip" the archive (bytes)."""
        answer = (lambda response: response.content) if format == "zip" else model_answer(AccountExport)
        return self._call(
            Call("GET", "/v1/me/export", params={"format": format}, idempotent=True, answer=answer)
        )

    def delete(self, password: str | None = None) -> None:
        """Close the account for good (the password is asked for accounts that have one)."""
        body = {"password": password} if password is not None else None
        return self._call(Call("DELETE", "/v1/me", body=body, idempotent=True))


class Identities(Resource):
    """Signing in with another provider (OpenID Connect), and the identities linked."""

    def providers(self) -> IdentityProviderList:
        return self._call(Call("GET", "/v1/auth/providers", idempotent=True, authenticated=False,
                               answer=model_answer(IdentityProviderList)))

    def start_sign_in(self, provider: str, redirect_uri: str | None = None) -> SignInStart:
        """Where to send the user; signed in already, the identity is linked to this account."""
        return self._call(Call("GET", f"/v1/auth/oidc/{provider}/start",
                               params={"redirect_uri": redirect_uri}, idempotent=True,
                               answer=model_answer(SignInStart)))

    def complete_sign_in(
        self, provider: str, code: str, state: str, redirect_uri: str | None = None
    ) -> Tokens:
        """The provider's answer (`code`, `state`) for tokens, kept by the client as login's are."""
        params = {"code": code, "state": state, "redirect_uri": redirect_uri}
        return self._call(Call("GET", f"/v1/auth/oidc/{provider}/callback", params=params,
                               answer=self._client.auth._tokens))

    def list(self) -> IdentityList:
        return self._call(Call("GET", "/v1/me/identities", idempotent=True,
                               answer=model_answer(IdentityList)))

    def unlink(self, identity_id: str) -> None:
        return self._call(Call("DELETE", f"/v1/me/identities/{identity_id}", idempotent=True))


class Segments(Resource):
    """A story's segments: paging, editing by hand, alternatives and revisions."""

    def list(self, story_id: str, *, after: int | None = None, limit: int = 50) -> SegmentPage:
        """Segments in order, from the one after position `after`."""
        return self._call(Call("GET", f"/v1/stories/{story_id}/segments",
                               params={"after": after, "limit": limit}, idempotent=True,
                               answer=model_answer(SegmentPage)))

    def edit(self, story_id: str, segment_id: str, text: str) -> Segment:
        """Rewrite a segment by hand (the earlier text is kept as a revision)."""
        return self._call(Call("PATCH", f"/v1/stories/{story_id}/segments/{segment_id}",
                               body={"text": text}, idempotent=True, answer=model_answer(Segment)))

    def alternatives(self, story_id: str, segment_id: str) -> Alternatives:
        return self._call(Call("GET", f"/v1/stories/{story_id}/segments/{segment_id}/alternatives",
                               idempotent=True, answer=model_answer(Alternatives)))

    def select_alternative(self, story_id: str, segment_id: str, alternative_id: str) -> StorySummary:
        """Follow another version of a segment (and the branch that goes on from it)."""
        path = f"/v1/stories/{story_id}/segments/{segment_id}/alternatives/{alternative_id}/select"
        return self._call(Call("POST", path, idempotent=True, answer=model_answer(StorySummary)))

    def revisions(self, story_id: str, segment_id: str) -> Revisions:
        return self._call(Call("GET", f"/v1/stories/{story_id}/segments/{segment_id}/revisions",
                               idempotent=True, answer=model_answer(Revisions)))

    def restore_revision(self, story_id: str, segment_id: str, revision_id: str) -> Segment:
        path = f"/v1/stories/{story_id}/segments/{segment_id}/revisions/{revision_id}/restore"
        return self._call(Call("POST", path, idempotent=True, answer=model_answer(Segment)))


class Branches(Resource):
    """Every way a story has gone (each regenerated segment starts one)."""

    def list(self, story_id: str) -> BranchList:
        return self._call(Call("GET", f"/v1/stories/{story_id}/branches", idempotent=True,
                               answer=model_answer(BranchList)))

    def select(self, story_id: str, branch_id: str) -> StorySummary:
        return self._call(Call("POST", f"/v1/stories/{story_id}/branches/{branch_id}/select",
                               idempotent=True, answer=model_answer(StorySummary)))


class Lore(Resource):
    """A story's lore entries: text given to the model when their keys come up."""

    def create(self, story_id: str, text: str, keys: list[str] | None = None, **fields: Any) -> LoreEntry:
        """Fields: secondary_keys, secondary_logic, priority, constant, enabled."""
        body = {"text": text, "keys": keys or [], **fields}
        return self._call(Call("POST", f"/v1/stories/{story_id}/lore", body=body,
                               answer=model_answer(LoreEntry)))

    def list(self, story_id: str) -> LoreEntryList:
        return self._call(Call("GET", f"/v1/stories/{story_id}/lore", idempotent=True,
                               answer=model_answer(LoreEntryList)))

    def get(self, story_id: str, entry_id: str) -> LoreEntry:
        return self._call(Call("GET", f"/v1/stories/{story_id}/lore/{entry_id}", idempotent=True,
                               answer=model_answer(LoreEntry)))

    def update(self, story_id: str, entry_id: str, **fields: Any) -> LoreEntry:
        """Only the fields given change (keys, secondary_keys, secondary_logic, text,
        priority, constant, enabled)."""
        return self._call(Call("PATCH", f"/v1/stories/{story_id}/lore/{entry_id}", body=fields,
                               idempotent=True, answer=model_answer(LoreEntry)))

    def delete(self, story_id: str, entry_id: str) -> None:
        return self._call(Call("DELETE", f"/v1/stories/{story_id}/lore/{entry_id}", idempotent=True))


class Sharing(Resource):
    """Read-only links to a story, for anyone who has them."""

    def share(self, story_id: str) -> ShareLink:
        """The story's link (the same one again while it is not revoked)."""
        return self._call(Call("POST", f"/v1/stories/{story_id}/share", idempotent=True,
                               answer=model_answer(ShareLink)))

    def revoke(self, story_id: str) -> None:
        return self._call(Call("DELETE", f"/v1/stories/{story_id}/share", idempotent=True))

    def get(self, token: str) -> SharedStory:
        """A shared story, by its link's token; no account needed."""
        return self._call(Call("GET", f"/v1/shared/{token}", idempotent=True, authenticated=False,
                               answer=model_answer(SharedStory)))


class Suggestions(Resource):
    def get(self, *, genre: str | None = None, count: int | None = None,
            locale: str | None = None) -> StorySuggestions:
        """Story ideas to start from (a title, characters and an opening line each)."""
        params = {"genre": genre, "count": count, "locale": locale}
        return self._call(Call("GET", "/v1/suggestions", params=params, idempotent=True,
                               answer=model_answer(StorySuggestions)))


class Narratives(Resource):
    """What a project's jobs wrote, with every revised version."""

    def list(self, project_id: str, *, limit: int = 20, cursor: str | None = None) -> NarrativePage:
        return self._call(Call("GET", f"/v1/projects/{project_id}/narratives",
                               params={"limit": limit, "cursor": cursor}, idempotent=True,
                               answer=model_answer(NarrativePage)))

    def get(self, narrative_id: str) -> Narrative:
        return self._call(Call("GET", f"/v1/narratives/{narrative_id}", idempotent=True,
                               answer=model_answer(Narrative)))

    def versions(self, narrative_id: str) -> NarrativeVersions:
        return self._call(Call("GET", f"/v1/narratives/{narrative_id}/versions", idempotent=True,
                               answer=model_answer(NarrativeVersions)))

    def revise(
        self, narrative_id: str, instructions: str, *, locked_sections: Sequence[int] = (),
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a revision (a job; watch it with jobs.watch()); it becomes a new version."""
        body = {"instructions": instructions, "locked_sections": list(locked_sections)}
        return self._call(Call.once("POST", f"/v1/narratives/{narrative_id}/revise", idempotency_key,
                                    body=body, answer=model_answer(Job)))

    def export(self, narrative_id: str, format: str = "md") -> bytes:
        """The narrative as a file: `md`, `txt` or `epub` (bytes)."""
        return self._call(Call("GET", f"/v1/narratives/{narrative_id}/export",
                               params={"format": format}, idempotent=True,
                               answer=lambda response: response.content))


class Photos(Resource):
    """Photos, sent straight to storage: create() describes where the bytes go,
    complete() says they are there; upload() does all three."""

    def create(self, content_type: str, size_bytes: int, filename: str = "") -> PhotoUpload:
        body = {"content_type": content_type, "size_bytes": size_bytes, "filename": filename}
        return self._call(Call("POST", "/v1/photos", body=body, answer=model_answer(PhotoUpload)))

    def complete(self, photo_id: str) -> Photo:
        """The bytes are uploaded: the photo is checked and its thumbnails made (status
        `processing`, then `completed` or `failed`)."""
        return self._call(Call("POST", f"/v1/photos/{photo_id}/complete", idempotent=True,
                               answer=model_answer(Photo)))

    def list(self, *, limit: int = 20, cursor: str | None = None) -> PhotoPage:
        return self._call(Call("GET", "/v1/photos", params={"limit": limit, "cursor": cursor},
                               idempotent=True, answer=model_answer(PhotoPage)))

    def get(self, photo_id: str) -> Photo:
        return self._call(Call("GET", f"/v1/photos/{photo_id}", idempotent=True,
                               answer=model_answer(Photo)))

    def delete(self, photo_id: str) -> None:
        return self._call(Call("DELETE", f"/v1/photos/{photo_id}", idempotent=True))

    def upload(
        self,
        file: str | os.PathLike[str] | bytes,
        content_type: str | None = None,
        *,
        filename: str | None = None,
        wait: bool = True,
        timeout: float = 60.0,
    ) -> Photo:
        """Create a photo, send its bytes where the answer says (a presigned
        storage POST, or a signed PUT URL) and complete it. With wait (the
        default) the photo is returned processed: `completed` with its
        renditions, or `failed` with a `failure_reason`. `content_type` is
        guessed from the file name when not given."""
        if isinstance(file, bytes):
            data, name = file, filename or "upload"
        else:
            path = Path(file)
            data, name = path.read_bytes(), filename or path.name
        content_type = content_type or mimetypes.guess_type(name)[0]
        if not content_type:
            raise ValueError(f"the content type of {name!r} is not known: pass content_type")
        return self._flow(_photo_upload(data, content_type, name, wait, timeout))


def _photo_upload(data: bytes, content_type: str, filename: str, wait: bool, timeout: float) -> Flow:
    created: PhotoUpload = yield Call(
        "POST", "/v1/photos", answer=model_answer(PhotoUpload),
        body={"content_type": content_type, "size_bytes": len(data), "filename": filename},
    )
    target = created.upload
    # To storage (or the signed local URL) as it is: our credentials never go with it.
    if target.method == "PUT":
        yield Call("PUT", target.url, content=data, headers=target.headers, idempotent=True,
                   authenticated=False)
    else:
        yield Call("POST", target.url, form=target.fields, headers=target.headers,
                   files={"file": (filename, data, content_type)}, idempotent=True,
                   authenticated=False)
    photo_id = created.photo.id
    photo: Photo = yield Call("POST", f"/v1/photos/{photo_id}/complete", idempotent=True,
                              answer=model_answer(Photo))
    deadline = time.monotonic() + timeout
    delay = 0.1
    while wait and not photo.is_processed:
        if time.monotonic() > deadline:
            raise TimeoutError(f"photo {photo_id} is still {photo.status} after {timeout:g} s")
        yield Sleep(delay)
        delay = min(delay * 2, 2.0)
        photo = yield Call("GET", f"/v1/photos/{photo_id}", idempotent=True, answer=model_answer(Photo))
    return photo


class Tutorials(Resource):
    """Drawing tutorials, step by step, in English or German."""

    def list(self, *, category: str | None = None, lang: str | None = None) -> TutorialList:
        """`lang`: `en` or `de` (default: the account's locale)."""
        return self._call(Call("GET", "/v1/tutorials", params={"category": category, "lang": lang},
                               idempotent=True, answer=model_answer(TutorialList)))

    def get(self, tutorial_id: str, *, lang: str | None = None) -> Tutorial:
        return self._call(Call("GET", f"/v1/tutorials/{tutorial_id}", params={"lang": lang},
                               idempotent=True, answer=model_answer(Tutorial)))

    def create(
        self, category: str, title: dict[str, str], description: dict[str, str],
        steps: Sequence[Mapping[str, Any]], thumbnail_url: str = "",
    ) -> BilingualTutorial:
        """For editors (superusers): texts as {"en": ..., "de": ...}; steps as
        {"instruction": {"en": ..., "de": ...}, "image_url": ...}."""
        body = {"category": category, "title": title, "description": description,
                "steps": [dict(step) for step in steps], "thumbnail_url": thumbnail_url}
        return self._call(Call("POST", "/v1/tutorials", body=body,
                               answer=model_answer(BilingualTutorial)))

    def update(self, tutorial_id: str, **fields: Any) -> BilingualTutorial:
        """For editors: only the fields given change (category, title, description,
        thumbnail_url, steps)."""
        return self._call(Call("PATCH", f"/v1/tutorials/{tutorial_id}", body=fields,
                               idempotent=True, answer=model_answer(BilingualTutorial)))


class Drawings(Resource):
    """Drawings from uploaded photos (of a tutorial or free), with their edits."""

    def create(self, photo_id: str, tutorial_id: str | None = None) -> Drawing:
        return self._call(Call("POST", "/v1/drawings",
                               body={"photo_id": photo_id, "tutorial_id": tutorial_id},
                               answer=model_answer(Drawing)))

    def add_edit(self, drawing_id: str, photo_id: str) -> Drawing:
        """A new version of the drawing (another uploaded photo)."""
        return self._call(Call("POST", f"/v1/drawings/{drawing_id}/edits",
                               body={"photo_id": photo_id}, answer=model_answer(Drawing)))

    def list(self, *, limit: int = 20, cursor: str | None = None) -> DrawingPage:
        return self._call(Call("GET", "/v1/drawings", params={"limit": limit, "cursor": cursor},
                               idempotent=True, answer=model_answer(DrawingPage)))

    def get(self, drawing_id: str) -> Drawing:
        return self._call(Call("GET", f"/v1/drawings/{drawing_id}", idempotent=True,
                               answer=model_answer(Drawing)))

    def delete(self, drawing_id: str) -> None:
        return self._call(Call("DELETE", f"/v1/drawings/{drawing_id}", idempotent=True))


class PictureStories(Resource):
    """Short stories about a drawing (its latest version), in English and German."""

    def create(self, drawing_id: str, direction: str = "") -> PictureStory:
        """Write one (counted as a generation)."""
        return self._call(Call("POST", f"/v1/drawings/{drawing_id}/stories",
                               body={"direction": direction}, answer=model_answer(PictureStory)))

    def list(
        self, *, favorite: bool | None = None, drawing_id: str | None = None, limit: int = 20,
        cursor: str | None = None,
    ) -> PictureStoryPage:
        params = {"favorite": _flag(favorite), "drawing_id": drawing_id, "limit": limit,
                  "cursor": cursor}
        return self._call(Call("GET", "/v1/picture-stories", params=params, idempotent=True,
                               answer=model_answer(PictureStoryPage)))

    def get(self, picture_story_id: str) -> PictureStory:
        return self._call(Call("GET", f"/v1/picture-stories/{picture_story_id}", idempotent=True,
                               answer=model_answer(PictureStory)))

    def update(self, picture_story_id: str, *, is_favorite: bool) -> PictureStory:
        return self._call(Call("PATCH", f"/v1/picture-stories/{picture_story_id}",
                               body={"is_favorite": is_favorite}, idempotent=True,
                               answer=model_answer(PictureStory)))

    def delete(self, picture_story_id: str) -> None:
        return self._call(Call("DELETE", f"/v1/picture-stories/{picture_story_id}", idempotent=True))


class Billing(Resource):
    """Paid plans through Stripe: checkout, the subscription, invoices."""

    def checkout(
        self, plan: str, *, success_url: str | None = None, cancel_url: str | None = None
    ) -> Checkout:
        """A checkout page for `pro` or `enterprise`: send the user to its checkout_url."""
        body = {"plan": plan, "success_url": success_url, "cancel_url": cancel_url}
        return self._call(Call("POST", "/v1/billing/checkout", body=body,
                               answer=model_answer(Checkout)))

    def subscription(self) -> Subscription:
        return self._call(Call("GET", "/v1/billing/subscription", idempotent=True,
                               answer=model_answer(Subscription)))

    def cancel_subscription(self) -> Subscription:
        """At the end of the period paid for."""
        return self._call(Call("POST", "/v1/billing/subscription/cancel", idempotent=True,
                               answer=model_answer(Subscription)))

    def resume_subscription(self) -> Subscription:
        return self._call(Call("POST", "/v1/billing/subscription/resume", idempotent=True,
                               answer=model_answer(Subscription)))

    def portal(self, return_url: str | None = None) -> PortalSession:
        """Stripe's billing portal (payment methods, invoices): send the user to its url."""
        body = {"return_url": return_url} if return_url else None
        return self._call(Call("POST", "/v1/billing/portal", body=body,
                               answer=model_answer(PortalSession)))

    def invoices(self, *, limit: int = 20, cursor: str | None = None) -> InvoicePage:
        return self._call(Call("GET", "/v1/billing/invoices", params={"limit": limit, "cursor": cursor},
                               idempotent=True, answer=model_answer(InvoicePage)))


class Admin(Resource):
    """For superusers: accounts, plans and the audit log (each change needs a reason)."""

    def users(self, *, q: str | None = None, limit: int = 20, cursor: str | None = None) -> AdminUserPage:
        return self._call(Call("GET", "/v1/admin/users", params={"q": q, "limit": limit, "cursor": cursor},
                               idempotent=True, answer=model_answer(AdminUserPage)))

    def get_user(self, user_id: str) -> AdminUserDetail:
        return self._call(Call("GET", f"/v1/admin/users/{user_id}", idempotent=True,
                               answer=model_answer(AdminUserDetail)))

    def deactivate_user(self, user_id: str, reason: str | None = None) -> AdminUser:
        return self._call(Call("POST", f"/v1/admin/users/{user_id}/deactivate",
                               body={"reason": reason}, idempotent=True,
                               answer=model_answer(AdminUser)))

    def reactivate_user(self, user_id: str, reason: str | None = None) -> AdminUser:
        return self._call(Call("POST", f"/v1/admin/users/{user_id}/reactivate",
                               body={"reason": reason}, idempotent=True,
                               answer=model_answer(AdminUser)))

    def set_plan(self, user_id: str, plan: str, reason: str) -> Usage:
        return self._call(Call("PUT", f"/v1/admin/users/{user_id}/plan",
                               body={"plan": plan, "reason": reason}, idempotent=True,
                               answer=model_answer(Usage)))

    def set_superuser(self, user_id: str, superuser: bool, reason: str | None = None) -> AdminUser:
        return self._call(Call("POST", f"/v1/admin/users/{user_id}/superuser",
                               body={"superuser": superuser, "reason": reason}, idempotent=True,
                               answer=model_answer(AdminUser)))

    def audit(self, *, user_id: str | None = None, limit: int = 20, cursor: str | None = None) -> AuditPage:
        params = {"user_id": user_id, "limit": limit, "cursor": cursor}
        return self._call(Call("GET", "/v1/admin/audit", params=params, idempotent=True,
                               answer=model_answer(AuditPage)))
