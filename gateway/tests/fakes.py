"""Fake backends for the gateway's tests: real grpc.aio servers in the test
process implementing the users, stories, billing and generation contracts
(libs/protos).

They stand in for the *services* so the real gateway app can be driven
through its happy paths: each answers with canned data derived from the
request, records every call (request, metadata, deadline) so a test can check
what the gateway sent, and can be told to fail a method with a status.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.common.v1.money_pb2 import Money
from fabula.generation.v1 import generation_pb2, generation_pb2_grpc, jobs_pb2_grpc
from fabula.media.v1 import media_pb2, media_pb2_grpc
from fabula.stories.v1 import (
    conversations_pb2_grpc,
    pictures_pb2_grpc,
    projects_pb2_grpc,
    stories_pb2,
    stories_pb2_grpc,
)
from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.errors import FabulaError
from fabula_common.grpc_client import SERVER_KEEPALIVE_OPTIONS
from fabula_common.testing import free_port
from google.protobuf import empty_pb2, timestamp_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from .fakes_conversations import FakeConversations
from .fakes_discovery import FakeStoryDiscovery
from .fakes_pictures import FakeDrawings, FakeTutorials
from .fakes_projects import FakeJobs, FakeProjects

CREATED_AT = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)
# The text ContinueStory streams, piece by piece, before the stored segment.
CONTINUATION_PIECES = ("By morning ", "the ferry had stopped running.")
# A new story's opening when the request gives no opening line (streamed a
# word at a time).
OPENING = "It began."
LORE_ENTRY_ID = "3d2c1b0a-9f8e-4d7c-b6a5-4f3e2d1c0b9a"
# ExportStory's answer per format (a file in three pieces).
EXPORT_FILES = {
    stories_pb2.EXPORT_FORMAT_MARKDOWN: ("the-silent-ferry.md", "text/markdown; charset=utf-8"),
    stories_pb2.EXPORT_FORMAT_TEXT: ("the-silent-ferry.txt", "text/plain; charset=utf-8"),
    stories_pb2.EXPORT_FORMAT_EPUB: ("the-silent-ferry.epub", "application/epub+zip"),
}


async def abort_with(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    details: str,
    reason: str | None = None,
    metadata: dict[str, str] | None = None,
    retry_after: float | None = None,
) -> None:
    """End the call the way our services report an error: the rich status
    (google.rpc.Status with ErrorInfo and its metadata) when there is a
    reason, gRPC's plain status otherwise."""
    if reason is None:
        await context.abort(code, details)
    error = FabulaError(details, reason=reason, metadata=metadata, retry_after=retry_after)
    error.code = code
    status = error.to_status()
    await context.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)


@dataclass(frozen=True)
class Failure:
    code: grpc.StatusCode
    details: str
    reason: str | None = None
    metadata: dict[str, str] | None = None
    # Seconds of a RetryInfo; None: none.
    retry_after: float | None = None


@dataclass(frozen=True)
class Call:
    """One call as the fake received it."""

    method: str
    request: Message
    metadata: dict[str, str]
    # Seconds left before the caller's deadline when the call arrived; None = no deadline.
    time_remaining: float | None


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)

    def fail(
        self,
        method: str,
        code: grpc.StatusCode,
        details: str,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer every later call of `method` with this status."""
        self.failures[method] = Failure(code, details, reason, metadata, retry_after)

    def only(self, method: str) -> Call:
        """The one call of `method` received (fails when there were more or none)."""
        (call,) = [c for c in self.calls if c.method == method]
        return call

    async def receive(self, method: str, request: Message, context) -> None:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        self.calls.append(Call(method, request, metadata, context.time_remaining()))
        failure = self.failures.get(method)
        if failure is not None:
            await abort_with(
                context,
                failure.code,
                failure.details,
                failure.reason,
                failure.metadata,
                failure.retry_after,
            )


def timestamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def segment(position: int, text: str, kind: int) -> stories_pb2.Segment:
    return stories_pb2.Segment(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"segment-{position}-{text}")),
        position=position,
        text=text,
        kind=kind,
        created_at=timestamp(CREATED_AT + dt.timedelta(seconds=position)),
        provider="offline",
        model="offline-v1",
        is_language_model=False,
    )


def story(
    story_id: str,
    user_id: str,
    *,
    title: str = "The Lighthouse Keeper",
    genre: str = "mystery",
    characters: tuple[str, ...] = ("Mara",),
    opening_line: str | None = None,
    segments: tuple[stories_pb2.Segment, ...] = (),
    is_complete: bool = False,
) -> stories_pb2.Story:
    message = stories_pb2.Story(
        id=story_id,
        user_id=user_id,
        title=title,
        genre=genre,
        characters=list(characters),
        is_complete=is_complete,
        segments=list(segments),
        segment_count=len(segments),
        created_at=timestamp(CREATED_AT),
        updated_at=timestamp(CREATED_AT + dt.timedelta(seconds=len(segments))),
    )
    if opening_line is not None:
        message.opening_line = opening_line
    return message


class FakeUsers(users_pb2_grpc.UsersServiceServicer):
    """Every email is welcome, every password right; tokens are canned."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.user_id = str(uuid.uuid4())
        # The full name GetUser answers with.
        self.full_name = ""

    def _tokens(self, email: str, full_name: str = "") -> users_pb2.TokenResponse:
        return users_pb2.TokenResponse(
            access_token="access-token-from-users",
            refresh_token="refresh-token-from-users",
            expires_in=900,
            user=users_pb2.User(
                id=self.user_id, email=email, full_name=full_name, created_at=timestamp(CREATED_AT)
            ),
        )

    async def Register(self, request, context):
        await self.recorder.receive("Register", request, context)
        return self._tokens(request.email, request.full_name)

    async def Login(self, request, context):
        await self.recorder.receive("Login", request, context)
        return self._tokens(request.email)

    async def Refresh(self, request, context):
        await self.recorder.receive("Refresh", request, context)
        return self._tokens("ada@example.com", "Ada")

    async def GetUser(self, request, context):
        await self.recorder.receive("GetUser", request, context)
        return users_pb2.User(
            id=request.user_id,
            email="ada@example.com",
            full_name=self.full_name,
            created_at=timestamp(CREATED_AT),
        )

    async def ListIdentityProviders(self, request, context):
        await self.recorder.receive("ListIdentityProviders", request, context)
        return users_pb2.ListIdentityProvidersResponse(
            providers=[users_pb2.IdentityProvider(name="google", display_name="Google")]
        )

    async def StartIdentitySignIn(self, request, context):
        await self.recorder.receive("StartIdentitySignIn", request, context)
        return users_pb2.StartIdentitySignInResponse(
            authorization_url=f"https://idp.example/{request.provider}/authorize?state=state-1",
            state="state-1",
        )

    async def CompleteIdentitySignIn(self, request, context):
        await self.recorder.receive("CompleteIdentitySignIn", request, context)
        return self._tokens("ada@example.com", "Ada")

    async def ListIdentities(self, request, context):
        await self.recorder.receive("ListIdentities", request, context)
        return users_pb2.ListIdentitiesResponse(
            identities=[
                users_pb2.Identity(
                    id="0b6f3c1e-8d2a-4f5b-9c7e-1a2b3c4d5e6f",
                    provider="google",
                    subject="110248495921238986420",
                    email="ada@example.com",
                    created_at=timestamp(CREATED_AT),
                )
            ]
        )

    async def UnlinkIdentity(self, request, context):
        await self.recorder.receive("UnlinkIdentity", request, context)
        return users_pb2.UnlinkIdentityResponse()
    # --- API keys, Authenticate and administration (U3) ---------------------------
    # Every access token's account is active; API keys are those in
    # `api_keys` (key -> Principal); superusers are those in `superusers`.

    async def Authenticate(self, request, context):
        await self.recorder.receive("Authenticate", request, context)
        if request.WhichOneof("credential") == "api_key":
            principal = getattr(self, "api_keys", {}).get(request.api_key)
            if principal is None:
                await abort_with(
                    context, grpc.StatusCode.UNAUTHENTICATED, "invalid, revoked or expired API key"
                )
            return principal
        return users_pb2.Principal(
            user_id=request.user_id,
            is_superuser=request.user_id in getattr(self, "superusers", set()),
            # Accounts in `children` are under 13 by their birthdate.
            child_safe=request.user_id in getattr(self, "children", set()),
        )

    def _api_key(self) -> users_pb2.ApiKey:
        return users_pb2.ApiKey(
            id="0b7f3c1e-8a52-4d0e-9f61-2c4b5a6d7e8f",
            name="nightly export",
            scopes=["read"],
            prefix="fab_3f9c0e6a5b3d",
            created_at=timestamp(CREATED_AT),
        )

    async def CreateApiKey(self, request, context):
        await self.recorder.receive("CreateApiKey", request, context)
        api_key = self._api_key()
        api_key.name, api_key.scopes[:] = request.name, request.scopes
        if request.HasField("expires_at"):
            api_key.expires_at.CopyFrom(request.expires_at)
        return users_pb2.CreatedApiKey(api_key=api_key, key="fab_3f9c0e6a5b3d_secret")

    async def ListApiKeys(self, request, context):
        await self.recorder.receive("ListApiKeys", request, context)
        return users_pb2.ListApiKeysResponse(api_keys=[self._api_key()])

    async def RevokeApiKey(self, request, context):
        await self.recorder.receive("RevokeApiKey", request, context)
        return users_pb2.RevokeApiKeyResponse()

    def _admin_user(self, user_id: str, **fields) -> users_pb2.User:
        return users_pb2.User(
            id=user_id, email="ada@example.com", created_at=timestamp(CREATED_AT), **fields
        )

    async def AdminListUsers(self, request, context):
        await self.recorder.receive("AdminListUsers", request, context)
        return users_pb2.AdminListUsersResponse(
            users=[self._admin_user(self.user_id, is_active=True)], next_cursor="next-page"
        )

    async def AdminSetActive(self, request, context):
        await self.recorder.receive("AdminSetActive", request, context)
        return self._admin_user(request.user_id, is_active=request.active)

    async def AdminSetSuperuser(self, request, context):
        await self.recorder.receive("AdminSetSuperuser", request, context)
        return self._admin_user(request.user_id, is_active=True, is_superuser=request.superuser)

    async def AdminRecordAction(self, request, context):
        await self.recorder.receive("AdminRecordAction", request, context)
        return users_pb2.AuditEntry(
            id=str(uuid.uuid4()),
            actor_id=request.actor_id,
            action=request.action,
            target_user_id=request.target_user_id,
            details=request.details,
            created_at=timestamp(CREATED_AT),
        )

    async def AdminListAudit(self, request, context):
        await self.recorder.receive("AdminListAudit", request, context)
        entry = users_pb2.AuditEntry(
            id=str(uuid.uuid4()),
            action="superuser.granted",
            target_user_id=request.actor_id,
            details={"via": "command"},
            created_at=timestamp(CREATED_AT),
        )
        return users_pb2.AdminListAuditResponse(entries=[entry])
    # --- U1 accounts: profile, verification, password reset

    def _profile(self, user_id: str, **fields) -> users_pb2.User:
        return users_pb2.User(
            id=user_id,
            email="ada@example.com",
            created_at=timestamp(CREATED_AT),
            locale="en",
            has_password=True,
            **fields,
        )

    async def UpdateProfile(self, request, context):
        await self.recorder.receive("UpdateProfile", request, context)
        return self._profile(
            request.user_id,
            **{name: getattr(request, name) for name in request.fields},
        )

    async def ChangeEmail(self, request, context):
        await self.recorder.receive("ChangeEmail", request, context)
        user = self._profile(request.user_id)
        user.email = request.new_email
        return user

    async def RequestEmailVerification(self, request, context):
        await self.recorder.receive("RequestEmailVerification", request, context)
        return users_pb2.RequestEmailVerificationResponse()

    async def VerifyEmail(self, request, context):
        await self.recorder.receive("VerifyEmail", request, context)
        return self._profile(self.user_id, is_verified=True)

    async def RequestPasswordReset(self, request, context):
        await self.recorder.receive("RequestPasswordReset", request, context)
        return users_pb2.RequestPasswordResetResponse()

    async def ResetPassword(self, request, context):
        await self.recorder.receive("ResetPassword", request, context)
        return users_pb2.ResetPasswordResponse()
    async def ExportUser(self, request, context):
        await self.recorder.receive("ExportUser", request, context)
        return users_pb2.UserExport(
            user=users_pb2.User(
                id=request.user_id, email="ada@example.com", created_at=timestamp(CREATED_AT)
            ),
            api_keys=[users_pb2.ApiKey(id="key-1", name="script", prefix="fab_live_3kF9")],
        )

    async def DeleteUser(self, request, context):
        await self.recorder.receive("DeleteUser", request, context)
        return users_pb2.DeleteUserResponse()


class FakeStories(FakeStoryDiscovery, stories_pb2_grpc.StoriesServiceServicer):
    """Stories shaped from the request: any id exists, as the caller's."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.new_story_id = str(uuid.uuid4())
        # Set to make ContinueStory fail after its text, before the segment.
        self.fail_after_text: Failure | None = None
        # Set to make ContinueStory wait for this after its text (a slow model).
        self.hold_after_text: asyncio.Event | None = None
        # Set to make ContinueStory answer as to a retry with an Idempotency-Key
        # whose first request finished: the stored segment only, no text.
        self.answer_as_retry = False

    async def CreateStory(self, request, context):
        await self.recorder.receive("CreateStory", request, context)
        return self._new_story(request)

    async def CreateStoryStream(self, request, context):
        """CreateStory's story, after its opening in OPENING_PIECES (none when
        `answer_as_retry`)."""
        await self.recorder.receive("CreateStoryStream", request, context)
        new = self._new_story(request)
        if not self.answer_as_retry:
            for piece in re.findall(r"\S+\s*", new.segments[0].text):
                yield stories_pb2.CreateStoryEvent(token=stories_pb2.TextDelta(text=piece))
        yield stories_pb2.CreateStoryEvent(story=new)

    def _new_story(self, request) -> stories_pb2.Story:
        opening = request.opening_line if request.HasField("opening_line") else OPENING
        return story(
            self.new_story_id,
            request.user_id,
            title=request.title if request.HasField("title") else "A generated title",
            genre=request.genre,
            characters=tuple(request.characters),
            opening_line=request.opening_line if request.HasField("opening_line") else None,
            segments=(segment(1, opening, stories_pb2.SEGMENT_KIND_OPENING),),
        )

    async def ContinueStory(self, request, context):
        await self.recorder.receive("ContinueStory", request, context)
        for piece in () if self.answer_as_retry else CONTINUATION_PIECES:
            yield stories_pb2.ContinueStoryEvent(token=stories_pb2.TextDelta(text=piece))
        if self.hold_after_text is not None:
            await self.hold_after_text.wait()
        if self.fail_after_text is not None:
            failure = self.fail_after_text
            await abort_with(
                context,
                failure.code,
                failure.details,
                failure.reason,
                failure.metadata,
                failure.retry_after,
            )
        text = "".join(CONTINUATION_PIECES)
        yield stories_pb2.ContinueStoryEvent(
            segment=segment(2, text, stories_pb2.SEGMENT_KIND_CONTINUATION)
        )

    async def EndStory(self, request, context):
        await self.recorder.receive("EndStory", request, context)
        return story(
            request.story_id,
            request.user_id,
            segments=(
                segment(1, "It began.", stories_pb2.SEGMENT_KIND_OPENING),
                segment(2, "And so it ended.", stories_pb2.SEGMENT_KIND_ENDING),
            ),
            is_complete=True,
        )

    async def GetStory(self, request, context):
        await self.recorder.receive("GetStory", request, context)
        return story(
            request.story_id,
            request.user_id,
            opening_line="The lamp had been dark for three nights.",
            segments=(
                segment(1, "The lamp had been dark.", stories_pb2.SEGMENT_KIND_OPENING),
                segment(2, "Then it was lit.", stories_pb2.SEGMENT_KIND_CONTINUATION),
            ),
        )

    async def ListStories(self, request, context):
        await self.recorder.receive("ListStories", request, context)
        items = [
            story(str(uuid.uuid5(uuid.NAMESPACE_URL, f"story-{n}")), request.user_id)
            for n in range(request.limit)
        ]
        hit = self.search_hit(request)
        for item in items if hit is not None else ():
            item.search.CopyFrom(hit)
        # Pages go on until a cursor is given: one page more, then the end.
        return stories_pb2.ListStoriesResponse(
            items=items, next_cursor="" if request.cursor else "cursor-of-page-2"
        )

    async def DeleteStory(self, request, context):
        await self.recorder.receive("DeleteStory", request, context)
        return empty_pb2.Empty()

    async def ExportStories(self, request, context):
        await self.recorder.receive("ExportStories", request, context)
        for n in range(2):
            yield story(
                str(uuid.uuid5(uuid.NAMESPACE_URL, f"exported-{n}")),
                request.user_id,
                segments=(segment(1, f"Story {n} began.", stories_pb2.SEGMENT_KIND_OPENING),),
            )

    # --- Memory, lore and context ----------------------------------------------

    async def UpdateStory(self, request, context):
        await self.recorder.receive("UpdateStory", request, context)
        message = story(request.story_id, request.user_id, title=request.title or "A title")
        message.memory = request.memory
        message.authors_note = request.authors_note
        message.is_favorite = request.is_favorite
        return message

    @staticmethod
    def lore_entry(story_id: str, entry_id: str | None = None, **fields) -> stories_pb2.LoreEntry:
        return stories_pb2.LoreEntry(
            id=entry_id or LORE_ENTRY_ID,
            story_id=story_id,
            created_at=timestamp(CREATED_AT),
            updated_at=timestamp(CREATED_AT),
            enabled=True,
            **fields,
        )

    async def CreateLoreEntry(self, request, context):
        await self.recorder.receive("CreateLoreEntry", request, context)
        return self.lore_entry(
            request.story_id,
            keys=request.keys,
            secondary_keys=request.secondary_keys,
            secondary_logic=request.secondary_logic,
            text=request.text,
            priority=request.priority,
            constant=request.constant,
        )

    async def ListLoreEntries(self, request, context):
        await self.recorder.receive("ListLoreEntries", request, context)
        return stories_pb2.ListLoreEntriesResponse(
            entries=[self.lore_entry(request.story_id, keys=["astrolabe"], text="Brass.")]
        )

    async def GetLoreEntry(self, request, context):
        await self.recorder.receive("GetLoreEntry", request, context)
        return self.lore_entry(request.story_id, request.entry_id, keys=["astrolabe"], text="Brass.")

    async def UpdateLoreEntry(self, request, context):
        await self.recorder.receive("UpdateLoreEntry", request, context)
        return self.lore_entry(
            request.story_id, request.entry_id, keys=request.keys or ["astrolabe"],
            text=request.text or "Brass.", priority=request.priority,
        )

    async def DeleteLoreEntry(self, request, context):
        await self.recorder.receive("DeleteLoreEntry", request, context)
        return empty_pb2.Empty()

    async def GetContext(self, request, context):
        await self.recorder.receive("GetContext", request, context)
        return stories_pb2.StoryContext(
            memory="Mara cannot swim.",
            lore=[
                stories_pb2.ContextLore(
                    entry_id=LORE_ENTRY_ID, text="Brass.", tokens=2, matched="astrolabe"
                )
            ],
            segments=[
                stories_pb2.ContextSegment(
                    position=1, segment_id=str(uuid.uuid4()), text="Mara found the astrolabe.",
                    tokens=7,
                )
            ],
            authors_note="Eerie.",
            direction=request.direction,
            budget=stories_pb2.ContextBudget(max_tokens=2048, used_tokens=20),
            prompt=[
                stories_pb2.PromptMessage(role="system", content="You are Fabula."),
                stories_pb2.PromptMessage(role="user", content="Memory: Mara cannot swim."),
            ],
        )
    async def ExportStory(self, request, context):
        await self.recorder.receive("ExportStory", request, context)
        filename, content_type = EXPORT_FILES[request.format]
        pieces = [f"by {request.author_name}|".encode(), b"second|", b"third"]
        yield stories_pb2.ExportChunk(
            header=stories_pb2.ExportHeader(
                filename=filename,
                content_type=content_type,
                size_bytes=sum(len(piece) for piece in pieces),
            )
        )
        for piece in pieces:
            yield stories_pb2.ExportChunk(data=piece)


class FakeBilling(billing_pb2_grpc.BillingServiceServicer):
    PERIOD_START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    PERIOD_END = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.unlimited = False

    async def GetUsage(self, request, context):
        await self.recorder.receive("GetUsage", request, context)
        summary = billing_pb2.UsageSummary(
            plan="enterprise" if self.unlimited else "free",
            period_start=timestamp(self.PERIOD_START),
            period_end=timestamp(self.PERIOD_END),
            generations_used=3,
            cost_used=Money(currency_code="USD", units=0, nanos=24_000_000),
            generations_reserved=1,
        )
        if not self.unlimited:
            summary.generations_limit = 5
            summary.cost_limit.CopyFrom(Money(currency_code="USD", units=10))
        return summary

    # Payments (Stripe) methods: answers shaped as billing's.

    def subscription(self, cancel_at_period_end: bool = False) -> billing_pb2.Subscription:
        return billing_pb2.Subscription(
            plan="pro",
            status="active",
            current_period_start=timestamp(self.PERIOD_START),
            current_period_end=timestamp(self.PERIOD_END),
            cancel_at_period_end=cancel_at_period_end,
            subscription_id="sub_123",
            subscribed_plan="pro",
        )

    async def CreateCheckoutSession(self, request, context):
        await self.recorder.receive("CreateCheckoutSession", request, context)
        return billing_pb2.CheckoutSession(
            session_id="cs_test_123", checkout_url="https://checkout.example/cs_test_123"
        )

    async def CreatePortalSession(self, request, context):
        await self.recorder.receive("CreatePortalSession", request, context)
        return billing_pb2.PortalSession(url="https://portal.example/bps_123")

    async def GetSubscription(self, request, context):
        await self.recorder.receive("GetSubscription", request, context)
        return self.subscription()

    async def CancelSubscription(self, request, context):
        await self.recorder.receive("CancelSubscription", request, context)
        return self.subscription(cancel_at_period_end=True)

    async def ResumeSubscription(self, request, context):
        await self.recorder.receive("ResumeSubscription", request, context)
        return self.subscription()

    async def ListInvoices(self, request, context):
        await self.recorder.receive("ListInvoices", request, context)
        return billing_pb2.ListInvoicesResponse(
            invoices=[
                billing_pb2.Invoice(
                    id="in_1",
                    number="F-0001",
                    status="paid",
                    amount_paid=2000,
                    amount_due=2000,
                    currency="usd",
                    hosted_invoice_url="https://invoice.example/in_1",
                    period_start=timestamp(self.PERIOD_START),
                    period_end=timestamp(self.PERIOD_END),
                    created=timestamp(self.PERIOD_START),
                )
            ],
            # One page more when asked without a cursor, then the end.
            next_cursor="" if request.cursor else "next-page",
        )

    async def ReceiveStripeEvent(self, request, context):
        await self.recorder.receive("ReceiveStripeEvent", request, context)
        return billing_pb2.ReceiveStripeEventResponse(event_id="evt_1", duplicate=False)


    async def ListUsageLogs(self, request, context):
        await self.recorder.receive("ListUsageLogs", request, context)
        logs = [
            billing_pb2.UsageLog(
                id=str(1000 - n),
                created_at=timestamp(CREATED_AT - dt.timedelta(minutes=n)),
                # The third a job stage's call (operation and attributes as billing names them).
                operation="job_stage" if n == 2 else "continuation" if n else "opening",
                story_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "story-0")) if n % 2 == 0 else "",
                provider="mistral",
                model="mistral-small-latest",
                prompt_tokens=800,
                completion_tokens=300,
                cost=Money(currency_code="USD", units=0, nanos=340_000),
                estimated=n == 1,
                outcome="completed",
                counted=True,
                generation_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"generation-{n}")),
                attributes=(
                    {"production_type": "short_story", "stage": "draft-1"} if n == 2 else {}
                ),
            )
            for n in range(request.limit or 20)
        ]
        # Pages go on until a cursor is given: one page more, then the end.
        return billing_pb2.ListUsageLogsResponse(
            logs=logs, next_cursor="" if request.cursor else "cursor-of-page-2"
        )

    async def GetUsageBreakdown(self, request, context):
        await self.recorder.receive("GetUsageBreakdown", request, context)

        def row(key: str, provider: str, generations: int, calls: int, nanos: int):
            return billing_pb2.UsageBreakdownRow(
                key=key,
                provider=provider,
                generations=generations,
                calls=calls,
                prompt_tokens=calls * 100,
                completion_tokens=calls * 40,
                cost=Money(currency_code="USD", nanos=nanos),
            )

        return billing_pb2.UsageBreakdown(
            period_start=timestamp(self.PERIOD_START),
            period_end=timestamp(self.PERIOD_END),
            by_model=[
                row("mistral-large-latest", "mistral", 1, 2, 20_000_000),
                row("mistral-small-latest", "mistral", 2, 2, 4_000_000),
            ],
            by_operation=[
                row("continuation", "", 2, 3, 22_000_000),
                row("opening", "", 1, 1, 2_000_000),
            ],
            total=row("", "", 3, 4, 24_000_000),
            by_production_type=[row("short_story", "", 0, 1, 1_000_000)],
        )

    async def SetPlan(self, request, context):
        await self.recorder.receive("SetPlan", request, context)
        return billing_pb2.UsageSummary(
            plan=request.plan,
            period_start=timestamp(self.PERIOD_START),
            period_end=timestamp(self.PERIOD_END),
            cost_used=Money(currency_code="USD"),
        )


class FakeGeneration(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def SuggestStories(self, request, context):
        await self.recorder.receive("SuggestStories", request, context)
        genre = request.genre or "mystery"
        return generation_pb2.SuggestStoriesResponse(
            ideas=[
                generation_pb2.StoryIdea(
                    title=f"Idea {index + 1}",
                    genre=genre,
                    characters=["Mara, a lighthouse keeper", "Tom, her brother"],
                    opening_line="The fog came in at noon.",
                )
                for index in range(request.count)
            ],
            generation_id=str(uuid.uuid4()),
            provider="offline",
            model="offline",
            is_language_model=False,
        )


class FakeMedia(media_pb2_grpc.MediaServiceServicer):
    """The media calls the account routes make (the photo routes run against
    the real media service: test_photos_routes)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def ListPhotos(self, request, context):
        await self.recorder.receive("ListPhotos", request, context)
        photo = media_pb2.Photo(
            id="f0000000-0000-4000-8000-000000000001",
            user_id=request.user_id,
            status=media_pb2.PHOTO_STATUS_COMPLETED,
            content_type="image/webp",
            width=1024,
            height=768,
        )
        return media_pb2.ListPhotosResponse(photos=[photo])

    async def GetPhoto(self, request, context):
        """A processed photo with signed URLs, as media answers a read."""
        await self.recorder.receive("GetPhoto", request, context)
        base = f"https://media.example/{request.photo_id}"
        return media_pb2.Photo(
            id=request.photo_id,
            user_id=request.user_id,
            status=media_pb2.PHOTO_STATUS_COMPLETED,
            content_type="image/png",
            width=1600,
            height=1200,
            renditions=[
                media_pb2.Rendition(name="original", width=1600, height=1200, url=f"{base}/original"),
                media_pb2.Rendition(name="thumb_256", width=256, height=192, url=f"{base}/256"),
                media_pb2.Rendition(name="thumb_1024", width=1024, height=768, url=f"{base}/1024"),
            ],
            urls_expire_at=timestamp_pb2.Timestamp(seconds=1_900_000_000),
        )


@dataclass
class FakeBackends:
    """One server holding every fake service and grpc.health.v1 for all."""

    address: str
    recorder: Recorder
    users: FakeUsers
    stories: FakeStories
    billing: FakeBilling
    generation: FakeGeneration
    projects: FakeProjects
    jobs: FakeJobs
    conversations: FakeConversations
    tutorials: FakeTutorials
    drawings: FakeDrawings
    media: FakeMedia
    health: health_aio.HealthServicer
    server: grpc.aio.Server

    @property
    def calls(self) -> list[Call]:
        return self.recorder.calls

    def fail(
        self,
        method: str,
        code: grpc.StatusCode,
        details: str,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.recorder.fail(method, code, details, reason, metadata)

    def only(self, method: str) -> Call:
        return self.recorder.only(method)


@asynccontextmanager
async def fake_backends() -> AsyncIterator[FakeBackends]:
    recorder = Recorder()
    # Accepts the gateway's keepalive pings, as the real services do.
    server = grpc.aio.server(options=SERVER_KEEPALIVE_OPTIONS)
    backends = FakeBackends(
        address=f"127.0.0.1:{free_port()}",
        recorder=recorder,
        users=FakeUsers(recorder),
        stories=FakeStories(recorder),
        billing=FakeBilling(recorder),
        generation=FakeGeneration(recorder),
        projects=FakeProjects(recorder),
        jobs=FakeJobs(recorder),
        conversations=FakeConversations(recorder),
        tutorials=FakeTutorials(recorder),
        drawings=FakeDrawings(recorder),
        media=FakeMedia(recorder),
        health=health_aio.HealthServicer(),
        server=server,
    )
    users_pb2_grpc.add_UsersServiceServicer_to_server(backends.users, server)
    stories_pb2_grpc.add_StoriesServiceServicer_to_server(backends.stories, server)
    billing_pb2_grpc.add_BillingServiceServicer_to_server(backends.billing, server)
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(backends.generation, server)
    projects_pb2_grpc.add_ProjectsServiceServicer_to_server(backends.projects, server)
    jobs_pb2_grpc.add_JobsServiceServicer_to_server(backends.jobs, server)
    conversations_pb2_grpc.add_ConversationsServiceServicer_to_server(
        backends.conversations, server
    )
    pictures_pb2_grpc.add_TutorialsServiceServicer_to_server(backends.tutorials, server)
    pictures_pb2_grpc.add_DrawingsServiceServicer_to_server(backends.drawings, server)
    media_pb2_grpc.add_MediaServiceServicer_to_server(backends.media, server)
    health_pb2_grpc.add_HealthServicer_to_server(backends.health, server)
    server.add_insecure_port(backends.address)
    await server.start()
    await backends.health.set("", health_pb2.HealthCheckResponse.SERVING)
    try:
        yield backends
    finally:
        await server.stop(None)
