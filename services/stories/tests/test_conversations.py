"""Council conversations (ConversationsService) over real gRPC, Postgres and NATS.

Generation's CouncilService is played here by a small double that streams a
scripted, realistic sequence of CouncilEvents. That is another service's
contract (protos/fabula/generation/v1/council.proto), not this service's
internals: the real CouncilService is built at the same time and not merged
yet. The end-to-end tests use the real one."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import datetime as dt

import grpc
import nats
import pytest
from fabula.billing.v1 import events_pb2 as billing_events
from fabula.common.v1 import money_pb2
from fabula.generation.v1 import council_pb2, council_pb2_grpc
from fabula.stories.v1 import conversations_pb2, conversations_pb2_grpc, events_pb2
from fabula_common.db import Database
from fabula_common.errors import UpstreamError, error_reason
from fabula_common.messaging.bus import EventBus, subject_for
from fabula_common.messaging.headers import MSG_ID_HEADER
from fabula_common.settings import CommonSettings
from fabula_common.testing import free_port, running_app
from fabula_stories.app import create_app
from fabula_stories.conversations.models import Conversation, ConversationMessage
from fabula_stories.conversations.service import record_to_json
from fabula_stories.exchange.council_seed import (
    read_conversation,
    read_profile,
    read_subscription,
)
from fabula_stories.exchange.seed import MalformedStory
from fabula_stories.settings import Settings
from fabula_stories.stories.events import DeliverySubjects
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select, update

Stub = conversations_pb2_grpc.ConversationsServiceStub
MEMBERS = ("offline/alpha", "offline/beta", "offline/gamma")
CHAIRMAN_TEXT = "The council agrees: the lighthouse keeper did it."


def usage(tokens: int = 10) -> council_pb2.StageUsage:
    return council_pb2.StageUsage(
        prompt_tokens=tokens,
        completion_tokens=tokens,
        cost=money_pb2.Money(currency_code="USD", units=0, nanos=1000),
        duration_ms=5,
    )


# --- The CouncilService double ---------------------------------------------------------


class CouncilDouble(council_pb2_grpc.CouncilServiceServicer):
    """Streams what the real council streams, in its order; can pause after
    stage 1 (to look at what stories stored meanwhile), fail midway, or ask
    clarifying questions."""

    def __init__(self) -> None:
        self.requests: list[council_pb2.DeliberateRequest] = []
        self.reset()

    def reset(self) -> None:
        self.fail_after_stage_1 = False
        self.questions: list[str] = []
        self.pause_after_stage_1: asyncio.Event | None = None
        self.reached_stage_2 = asyncio.Event()

    async def ClarifyingQuestions(self, request, context):
        return council_pb2.ClarifyingQuestionsResponse(questions=self.questions)

    async def Deliberate(self, request, context) -> AsyncIterator[council_pb2.CouncilEvent]:
        self.requests.append(request)
        event = council_pb2.CouncilEvent
        # Stages done by an earlier attempt are not run again (as generation does).
        if request.done_reviews:
            async for done in self._stage_3(request):
                yield done
            return
        if not request.done_answers:
            async for done in self._stage_1():
                yield done
        if self.fail_after_stage_1:
            # As generation reports it: each member's own error, reason model-unavailable.
            status = UpstreamError(
                "every member failed: offline/alpha: boom",
                reason=UpstreamError.MODEL_UNAVAILABLE,
            ).to_status()
            await context.abort(
                status.code, status.details, trailing_metadata=status.trailing_metadata
            )
        yield event(stage_started=2)
        self.reached_stage_2.set()
        if self.pause_after_stage_1 is not None:
            await self.pause_after_stage_1.wait()
        labels = {"Response A": MEMBERS[1], "Response B": MEMBERS[0]}
        for model in MEMBERS[:2]:
            yield event(
                review=council_pb2.MemberReview(
                    model=model,
                    text="FINAL RANKING:\n1. Response A\n2. Response B",
                    label_to_model=labels,
                    ranking=["Response A", "Response B"],
                    ranking_parsed=True,
                    usage=usage(),
                )
            )
        yield event(
            aggregate=council_pb2.AggregateRanking(
                members=[
                    council_pb2.RankedMember(model=MEMBERS[1], average_rank=1.0, votes=1),
                    council_pb2.RankedMember(model=MEMBERS[0], average_rank=2.0, votes=1),
                ]
            )
        )
        async for done in self._stage_3(request):
            yield done

    async def _stage_1(self) -> AsyncIterator[council_pb2.CouncilEvent]:
        event = council_pb2.CouncilEvent
        yield event(stage_started=1)
        for model in MEMBERS:
            yield event(delta=council_pb2.CouncilDelta(stage=1, model=model, text="It was "))
        for model in MEMBERS[:2]:
            yield event(
                answer=council_pb2.MemberAnswer(
                    model=model, text=f"It was the keeper, says {model}.", usage=usage()
                )
            )
        # One member fails: the council goes on without it.
        yield event(
            answer=council_pb2.MemberAnswer(model=MEMBERS[2], error="429 rate limited")
        )

    async def _stage_3(self, request) -> AsyncIterator[council_pb2.CouncilEvent]:
        event = council_pb2.CouncilEvent
        yield event(stage_started=3)
        yield event(delta=council_pb2.CouncilDelta(stage=3, model=MEMBERS[0], text="The "))
        yield event(
            chairman=council_pb2.ChairmanAnswer(model=MEMBERS[0], text=CHAIRMAN_TEXT, usage=usage())
        )
        if request.want_title:
            yield event(title="Who did it at the lighthouse")
        yield event(done=council_pb2.CouncilDone(usage=usage(50)))


@pytest.fixture(scope="module")
async def council() -> AsyncIterator[tuple[CouncilDouble, str]]:
    server = grpc.aio.server()
    double = CouncilDouble()
    council_pb2_grpc.add_CouncilServiceServicer_to_server(double, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    yield double, f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture
def double(council) -> CouncilDouble:
    council[0].reset()
    return council[0]


def _settings(council_addr: str, **overrides) -> Settings:
    return Settings(
        grpc_port=free_port(),
        generation_addr=council_addr,
        instance_name=f"stories-conversations-{uuid.uuid4().hex[:8]}",
        **overrides,
    )


@pytest.fixture(scope="module")
async def conversations(test_database, test_stream, council) -> AsyncIterator[Stub]:
    async with (
        running_app(create_app(_settings(council[1]))) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield Stub(channel)


@pytest.fixture(scope="module")
async def asking(test_database, test_stream, council) -> AsyncIterator[Stub]:
    """A stories service whose chairman may ask clarifying questions first."""
    settings = _settings(council[1])
    settings.council_follow_up_questions = 2
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


class Published:
    def __init__(self) -> None:
        self.delivered: list[events_pb2.GenerationDelivered] = []
        self.discarded: list[events_pb2.GenerationDiscarded] = []

    def of(self, generation_id: str) -> tuple[list, list]:
        return (
            [e for e in self.delivered if e.generation_id == generation_id],
            [e for e in self.discarded if e.generation_id == generation_id],
        )


@pytest.fixture(scope="module")
async def published(test_stream) -> AsyncIterator[Published]:
    settings = CommonSettings()
    subjects = DeliverySubjects.for_settings(settings)
    bus = EventBus(settings, name="stories-conversation-tests")
    js = await bus.jetstream()
    collected = Published()

    async def collect(msg) -> None:
        if msg.subject == subjects.delivered:
            collected.delivered.append(events_pb2.GenerationDelivered.FromString(msg.data))
        elif msg.subject == subjects.discarded:
            collected.discarded.append(events_pb2.GenerationDiscarded.FromString(msg.data))

    subscription = await js.subscribe(
        f"{settings.nats_subject_prefix}.stories.>", cb=collect, ordered_consumer=True
    )
    yield collected
    await subscription.unsubscribe()
    await bus.close()


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def new_conversation(stub: Stub, user_id: str, title: str = "") -> str:
    created = await stub.CreateConversation(
        conversations_pb2.CreateConversationRequest(user_id=user_id, title=title)
    )
    return created.id


async def ask(stub: Stub, user_id: str, conversation_id: str, content: str) -> list:
    call = stub.SendMessage(
        conversations_pb2.SendMessageRequest(
            user_id=user_id, conversation_id=conversation_id, content=content
        )
    )
    return [event async for event in call]


def user() -> str:
    return str(uuid.uuid4())


# --- Conversations ---------------------------------------------------------------------


async def test_conversations_are_listed_newest_first_starred_renamed_and_deleted(conversations):
    owner = user()
    first = await new_conversation(conversations, owner, "First")
    second = await new_conversation(conversations, owner, "Second")
    third = await new_conversation(conversations, owner)

    page = await conversations.ListConversations(
        conversations_pb2.ListConversationsRequest(user_id=owner, limit=2)
    )
    assert [c.id for c in page.items] == [third, second]
    rest = await conversations.ListConversations(
        conversations_pb2.ListConversationsRequest(user_id=owner, limit=2, cursor=page.next_cursor)
    )
    assert [c.id for c in rest.items] == [first] and rest.next_cursor == ""

    renamed = await conversations.UpdateConversation(
        conversations_pb2.UpdateConversationRequest(
            user_id=owner, conversation_id=first, title="  Renamed  ", starred=True
        )
    )
    assert (renamed.title, renamed.starred) == ("Renamed", True)
    starred = await conversations.ListConversations(
        conversations_pb2.ListConversationsRequest(user_id=owner, starred=True)
    )
    assert [c.id for c in starred.items] == [first]
    unstarred = await conversations.ListConversations(
        conversations_pb2.ListConversationsRequest(user_id=owner, starred=False)
    )
    assert [c.id for c in unstarred.items] == [third, second]

    await conversations.DeleteConversation(
        conversations_pb2.ConversationRef(user_id=owner, conversation_id=second)
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await conversations.GetConversation(
            conversations_pb2.ConversationRef(user_id=owner, conversation_id=second)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_titles_are_validated(conversations):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await new_conversation(conversations, user(), "x" * 201)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "200" in err.value.details()


async def test_another_users_conversation_is_not_found(conversations, double):
    owner, other = user(), user()
    conversation_id = await new_conversation(conversations, owner, "Mine")
    ref = conversations_pb2.ConversationRef(user_id=other, conversation_id=conversation_id)
    calls = [
        conversations.GetConversation(ref),
        conversations.DeleteConversation(ref),
        conversations.UpdateConversation(
            conversations_pb2.UpdateConversationRequest(
                user_id=other, conversation_id=conversation_id, starred=True
            )
        ),
        ask(conversations, other, conversation_id, "Whose is this?"),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    mine = await conversations.GetConversation(
        conversations_pb2.ConversationRef(user_id=owner, conversation_id=conversation_id)
    )
    assert (mine.title, mine.starred, len(mine.messages)) == ("Mine", False, 0)


# --- Asking the council -----------------------------------------------------------------


async def test_a_message_streams_the_council_and_stores_every_stage_then_is_delivered_once(
    conversations, double, published
):
    owner = user()
    conversation_id = await new_conversation(conversations, owner)
    events = await ask(conversations, owner, conversation_id, "Who did it?")

    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "message" and events[0].message.role == "user"
    assert kinds[-1] == "message" and events[-1].message.role == "assistant"
    council_kinds = [e.council.WhichOneof("event") for e in events if e.HasField("council")]
    assert council_kinds[0] == "stage_started" and "delta" in council_kinds
    assert council_kinds[-1] == "done"

    answer = events[-1].message
    assert answer.content == CHAIRMAN_TEXT
    record = answer.council
    assert [a.model for a in record.answers] == list(MEMBERS)
    assert record.answers[2].error == "429 rate limited"
    assert list(record.failed_members) == [MEMBERS[2]]
    assert record.reviews[0].ranking_parsed
    assert dict(record.reviews[0].label_to_model) == {
        "Response A": MEMBERS[1],
        "Response B": MEMBERS[0],
    }
    assert [m.model for m in record.aggregate.members] == [MEMBERS[1], MEMBERS[0]]
    assert record.chairman.model == MEMBERS[0]
    assert record.usage.prompt_tokens == 50

    # As stored: the question, then the answer with every stage; the title
    # generated from the first question.
    stored = await conversations.GetConversation(
        conversations_pb2.ConversationRef(user_id=owner, conversation_id=conversation_id)
    )
    assert stored.title == "Who did it at the lighthouse"
    assert [(m.role, m.content) for m in stored.messages] == [
        ("user", "Who did it?"),
        ("assistant", CHAIRMAN_TEXT),
    ]
    assert stored.messages[1].council == record
    assert not stored.messages[0].HasField("council")

    # The council was asked for this message, its id the generation's.
    request = double.requests[-1]
    assert request.message_id == answer.id and request.want_title
    await eventually(lambda: published.of(answer.id)[0])
    await asyncio.sleep(0.3)
    delivered, discarded = published.of(answer.id)
    assert len(delivered) == 1 and not discarded
    assert delivered[0].user_id == owner


async def test_a_second_question_sees_the_first_and_keeps_the_title(conversations, double):
    owner = user()
    conversation_id = await new_conversation(conversations, owner, "Lighthouse")
    await ask(conversations, owner, conversation_id, "Who did it?")
    await ask(conversations, owner, conversation_id, "And why?")

    request = double.requests[-1]
    assert [(t.role, t.content) for t in request.history] == [
        ("user", "Who did it?"),
        ("assistant", CHAIRMAN_TEXT),
    ]
    assert request.question == "And why?" and not request.want_title
    stored = await conversations.GetConversation(
        conversations_pb2.ConversationRef(user_id=owner, conversation_id=conversation_id)
    )
    assert stored.title == "Lighthouse" and stored.message_count == 4


async def test_each_stage_is_stored_as_it_completes_and_a_second_message_is_refused_meanwhile(
    conversations, double, db
):
    owner = user()
    conversation_id = await new_conversation(conversations, owner)
    double.pause_after_stage_1 = asyncio.Event()
    first = asyncio.create_task(ask(conversations, owner, conversation_id, "Who did it?"))
    await asyncio.wait_for(double.reached_stage_2.wait(), 10)

    async def stored_answers() -> list[str]:
        async with db.session_scope() as session:
            message = await session.scalar(
                select(ConversationMessage).where(
                    ConversationMessage.conversation_id == uuid.UUID(conversation_id),
                    ConversationMessage.role == "assistant",
                )
            )
            if message is None or not message.council:
                return []
            return [a["model"] for a in message.council.get("answers", [])]

    # Stage 1 is stored while stage 2 is still being written.
    await eventually(lambda: stored_answers())
    assert await stored_answers() == list(MEMBERS)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ask(conversations, owner, conversation_id, "Another question")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(err.value) == "conversation-busy"

    double.pause_after_stage_1.set()
    events = await first
    assert events[-1].message.content == CHAIRMAN_TEXT
    # Free again once answered.
    again = await ask(conversations, owner, conversation_id, "Another question")
    assert again[-1].message.content == CHAIRMAN_TEXT


async def test_a_caller_that_leaves_still_gets_its_message_stored_and_delivered(
    conversations, double, published
):
    owner = user()
    conversation_id = await new_conversation(conversations, owner)
    double.pause_after_stage_1 = asyncio.Event()
    call = conversations.SendMessage(
        conversations_pb2.SendMessageRequest(
            user_id=owner, conversation_id=conversation_id, content="Who did it?"
        )
    )
    await asyncio.wait_for(double.reached_stage_2.wait(), 10)
    call.cancel()
    double.pause_after_stage_1.set()

    ref = conversations_pb2.ConversationRef(user_id=owner, conversation_id=conversation_id)

    async def answered() -> bool:
        stored = await conversations.GetConversation(ref)
        return len(stored.messages) == 2 and stored.messages[1].content == CHAIRMAN_TEXT

    await eventually(answered)
    stored = await conversations.GetConversation(ref)
    await eventually(lambda: published.of(stored.messages[1].id)[0])
    assert len(published.of(stored.messages[1].id)[0]) == 1


async def test_a_failed_council_fails_the_message_and_discards_its_generation(
    conversations, double, published
):
    owner = user()
    conversation_id = await new_conversation(conversations, owner)
    double.fail_after_stage_1 = True
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ask(conversations, owner, conversation_id, "Who did it?")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(err.value) == "model-unavailable"
    assert "boom" in err.value.details()

    message_id = double.requests[-1].message_id
    await eventually(lambda: published.of(message_id)[1])
    await asyncio.sleep(0.3)
    delivered, discarded = published.of(message_id)
    assert not delivered and len(discarded) == 1

    stored = await conversations.GetConversation(
        conversations_pb2.ConversationRef(user_id=owner, conversation_id=conversation_id)
    )
    # The question stays, the failed answer keeps the stage it got to.
    assert [m.role for m in stored.messages] == ["user", "assistant"]
    assert stored.messages[1].content == ""
    assert len(stored.messages[1].council.answers) == 3
    # And the conversation is free for the next question.
    double.fail_after_stage_1 = False
    again = await ask(conversations, owner, conversation_id, "Who did it, then?")
    assert again[-1].message.content == CHAIRMAN_TEXT


async def test_message_content_is_validated(conversations):
    owner = user()
    conversation_id = await new_conversation(conversations, owner)
    for content in ("", "   ", "x" * 8_001):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ask(conversations, owner, conversation_id, content)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- Follow-up questions -----------------------------------------------------------------


async def test_clarifying_questions_wait_for_answers_then_the_council_deliberates_with_them(
    asking, double, published
):
    owner = user()
    conversation_id = await new_conversation(asking, owner)
    double.questions = ["Which lighthouse?", "Which year?"]
    before = len(double.requests)
    events = await ask(asking, owner, conversation_id, "Who did it?")
    assert [e.WhichOneof("event") for e in events] == ["message", "questions"]
    assert list(events[1].questions.questions) == ["Which lighthouse?", "Which year?"]
    assert len(double.requests) == before  # nothing deliberated yet

    ref = conversations_pb2.ConversationRef(user_id=owner, conversation_id=conversation_id)
    pending = await asking.GetConversation(ref)
    assert list(pending.pending_questions) == ["Which lighthouse?", "Which year?"]

    async def follow_up(answers: list[str]):
        call = asking.AnswerFollowUp(
            conversations_pb2.AnswerFollowUpRequest(
                user_id=owner, conversation_id=conversation_id, answers=answers
            )
        )
        return [event async for event in call]

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await follow_up(["Only one answer"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    events = await follow_up(["Point Reyes", "1923"])
    assert events[-1].message.content == CHAIRMAN_TEXT
    assert [(f.question, f.answer) for f in events[-1].message.council.follow_ups] == [
        ("Which lighthouse?", "Point Reyes"),
        ("Which year?", "1923"),
    ]
    request = double.requests[-1]
    assert request.question == "Who did it?"
    assert [(f.question, f.answer) for f in request.follow_ups] == [
        ("Which lighthouse?", "Point Reyes"),
        ("Which year?", "1923"),
    ]
    answered = await asking.GetConversation(ref)
    assert list(answered.pending_questions) == []
    assert [m.role for m in answered.messages] == ["user", "assistant"]

    # Nothing is pending any more.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await follow_up(["again", "again"])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_chairman_without_questions_goes_straight_to_the_council(asking, double):
    owner = user()
    conversation_id = await new_conversation(asking, owner)
    events = await ask(asking, owner, conversation_id, "Who did it?")
    assert events[-1].message.content == CHAIRMAN_TEXT




# --- The free plan's retention ----------------------------------------------------------


async def backdate(db: Database, conversation_id: str, days: int) -> None:
    async with db.session_scope() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == uuid.UUID(conversation_id))
            .values(created_at=Conversation.created_at - dt.timedelta(days=days))
        )


async def plan_changed(user_id: str, plan: str, occurred_at: dt.datetime) -> None:
    """Billing's PlanChanged, published as billing publishes it."""
    settings = CommonSettings()
    occurred = Timestamp()
    occurred.FromDatetime(occurred_at)
    event = billing_events.PlanChanged(
        event_id=str(uuid.uuid4()), user_id=user_id, plan=plan, source="manual",
        occurred_at=occurred,
    )
    nc = await nats.connect(settings.nats_url, connect_timeout=2)
    try:
        await nc.jetstream().publish(
            subject_for(settings, "billing", "plan_changed"),
            event.SerializeToString(),
            headers={MSG_ID_HEADER: uuid.uuid4().hex},
        )
    finally:
        await nc.close()


async def test_old_conversations_hide_on_the_free_plan_and_return_on_a_paid_one(
    conversations, double, db
):
    owner = user()
    old = await new_conversation(conversations, owner, "Old")
    recent = await new_conversation(conversations, owner, "Recent")
    await backdate(db, old, days=31)
    ref = conversations_pb2.ConversationRef(user_id=owner, conversation_id=old)

    async def listed() -> list[str]:
        page = await conversations.ListConversations(
            conversations_pb2.ListConversationsRequest(user_id=owner)
        )
        return [c.id for c in page.items]

    # No plan known: the free plan. The old one is hidden everywhere, not deleted.
    assert await listed() == [recent]
    for call in (
        conversations.GetConversation(ref),
        conversations.UpdateConversation(
            conversations_pb2.UpdateConversationRequest(
                user_id=owner, conversation_id=old, starred=True
            )
        ),
        ask(conversations, owner, old, "Still there?"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

    # An upgrade (billing's event) brings it back, messages and all.
    now = dt.datetime.now(dt.UTC)
    await plan_changed(owner, "pro", now)

    async def shows_both() -> bool:
        return await listed() == [recent, old]

    await eventually(shows_both)
    assert (await conversations.GetConversation(ref)).title == "Old"
    answered = await ask(conversations, owner, old, "Still there?")
    assert answered[-1].message.content == CHAIRMAN_TEXT

    # Back on the free plan it hides again; an older event arriving late
    # (the upgrade before it) changes nothing.
    await plan_changed(owner, "free", now + dt.timedelta(seconds=1))
    await eventually(lambda: _equals(listed(), [recent]))
    await plan_changed(owner, "enterprise", now - dt.timedelta(minutes=5))
    marker = user()
    await plan_changed(marker, "pro", now)
    # Events of one subject are applied in order: once the marker's is, the stale one was.
    marker_conversation = await new_conversation(conversations, marker)
    await backdate(db, marker_conversation, days=90)

    async def marker_applied() -> bool:
        page = await conversations.ListConversations(
            conversations_pb2.ListConversationsRequest(user_id=marker)
        )
        return len(page.items) == 1

    await eventually(marker_applied)
    assert await listed() == [recent]


async def test_the_export_holds_every_conversation_with_its_messages_hidden_ones_too(
    conversations, double, db
):
    owner = user()
    old = await new_conversation(conversations, owner, "Old")
    await ask(conversations, owner, old, "Who tells the story?")
    recent = await new_conversation(conversations, owner, "Recent")
    await backdate(db, old, days=31)
    other = await new_conversation(conversations, user(), "Someone else's")

    exported = [
        c async for c in conversations.ExportConversations(
            conversations_pb2.ExportConversationsRequest(user_id=owner)
        )
    ]

    # The free plan hides the old one from reading, not from the owner's export.
    assert [c.id for c in exported] == [recent, old] and other not in {c.id for c in exported}
    assert [m.role for m in exported[1].messages] == ["user", "assistant"]
    assert exported[1].messages[1].content == CHAIRMAN_TEXT


async def _equals(value: Awaitable, expected) -> bool:
    return await value == expected


# --- Importing the council app's JSON ----------------------------------------------------

SAMPLE = Path(__file__).parent / "data" / "council_sample"
SAMPLE_CONVERSATION = SAMPLE / "conversations" / "5f0c2a1e-7d4b-4c55-9a43-0b1f6a2e9c11.json"


def test_the_sample_folder_reads_as_the_council_app_wrote_it():
    conversation = read_conversation(SAMPLE_CONVERSATION)
    request = conversation.request
    assert conversation.owner == "user-ada"
    assert (request.source, request.original_id, request.title, request.starred) == (
        "llm-council", "5f0c2a1e-7d4b-4c55-9a43-0b1f6a2e9c11", "Keeper or sea?", True
    )
    assert request.created_at.ToDatetime(dt.UTC) == dt.datetime(2025, 3, 1, 9, 15, tzinfo=dt.UTC)
    assert [m.role for m in request.messages] == ["user", "assistant", "user", "assistant"]
    first_answer = request.messages[1]
    assert first_answer.content == "Let the keeper narrate, and give the sea the last chapter."
    assert [a.model for a in first_answer.council.answers] == [
        "openai/gpt-4.1", "anthropic/claude-sonnet-4", "google/gemini-2.5-pro"
    ]
    # A ranking the app could not parse stays flagged, not guessed.
    assert [r.ranking_parsed for r in first_answer.council.reviews] == [True, False, True]
    assert list(first_answer.council.reviews[0].ranking) == ["Response B", "Response C", "Response A"]
    # The answers to clarifying questions go with the first question and its answer.
    assert [(f.question, f.answer) for f in request.messages[0].follow_ups] == [
        ("Which century is the story set in?", "The 1920s")
    ]
    assert list(first_answer.council.follow_ups) == list(request.messages[0].follow_ups)

    single_user = read_conversation(
        SAMPLE / "conversations" / "8a7f3c90-1111-4e2b-8f00-3d9e5b7c2a01.json"
    )
    assert single_user.owner is None and not single_user.request.starred
    with pytest.raises(MalformedStory, match="stage3"):
        read_conversation(SAMPLE / "conversations" / "d15ea5e0-3333-4c4d-8e5f-6a7b8c9d0e1f.json")
    assert read_profile(SAMPLE / "profiles" / "user-ada.json").email == "ada@example.com"
    subscription = read_subscription(SAMPLE / "subscriptions" / "user-ada.json")
    assert (subscription.tier, subscription.status) == ("pro", "active")


async def test_a_conversation_is_imported_once_with_its_stages_and_timestamps(conversations, db):
    owner = user()
    request = read_conversation(SAMPLE_CONVERSATION).request
    request.user_id = owner
    first = await conversations.ImportConversation(request)
    again = await conversations.ImportConversation(request)
    assert first.imported and not again.imported
    assert again.conversation_id == first.conversation_id

    # From 2025: hidden while the owner is on the free plan, there on a paid one.
    ref = conversations_pb2.ConversationRef(user_id=owner, conversation_id=first.conversation_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await conversations.GetConversation(ref)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await plan_changed(owner, "pro", dt.datetime.now(dt.UTC))

    async def visible() -> bool:
        try:
            await conversations.GetConversation(ref)
        except grpc.aio.AioRpcError:
            return False
        return True

    await eventually(visible)
    stored = await conversations.GetConversation(ref)
    assert (stored.title, stored.starred) == ("Keeper or sea?", True)
    assert stored.created_at.ToDatetime(dt.UTC) == dt.datetime(2025, 3, 1, 9, 15, tzinfo=dt.UTC)
    assert [(m.role, m.content) for m in stored.messages] == [
        (m.role, m.content) for m in request.messages
    ]
    assert stored.messages[1].council == request.messages[1].council
    page = await conversations.ListConversations(
        conversations_pb2.ListConversationsRequest(user_id=owner)
    )
    assert [(c.id, c.message_count) for c in page.items] == [(first.conversation_id, 4)]

    # The council goes on in an imported conversation.
    answered = await ask(conversations, owner, first.conversation_id, "One more question")
    assert answered[-1].message.content == CHAIRMAN_TEXT


async def test_a_malformed_import_stores_nothing(conversations, db):
    owner = user()
    request = read_conversation(SAMPLE_CONVERSATION).request
    request.user_id = owner
    request.messages[2].role = "system"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await conversations.ImportConversation(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "messages[2].role" in err.value.details()
    async with db.session_scope() as session:
        assert not await session.scalar(
            select(Conversation.id).where(Conversation.user_id == uuid.UUID(owner))
        )



# --- Resuming an interrupted message --------------------------------------------------------


async def test_a_message_interrupted_by_a_shutdown_resumes_without_asking_its_members_again(
    conversations, double, published, test_database, test_stream, council
):
    owner = user()
    conversation_id = await new_conversation(conversations, owner)
    double.pause_after_stage_1 = asyncio.Event()
    stopping = _settings(council[1], shutdown_grace_seconds=0.2)
    async with (
        running_app(create_app(stopping)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        call = Stub(channel).SendMessage(
            conversations_pb2.SendMessageRequest(
                user_id=owner, conversation_id=conversation_id, content="Who did it?"
            )
        )
        await asyncio.wait_for(double.reached_stage_2.wait(), 10)
    # That stories process stopped midway through stage 2.
    call.cancel()
    double.pause_after_stage_1.set()
    ref = conversations_pb2.ConversationRef(user_id=owner, conversation_id=conversation_id)
    stored = await conversations.GetConversation(ref)
    interrupted = stored.messages[1]
    assert interrupted.status == "interrupted"
    assert [a.model for a in interrupted.council.answers] == list(MEMBERS)

    double.reset()
    before = len(double.requests)
    resumed = [
        event
        async for event in conversations.ResumeMessage(
            conversations_pb2.ResumeMessageRequest(
                user_id=owner, conversation_id=conversation_id, message_id=interrupted.id
            )
        )
    ]
    # Stage 1 went to the council as done: its members were not asked again.
    request = double.requests[before]
    assert request.message_id == interrupted.id and request.question == "Who did it?"
    assert [a.model for a in request.done_answers] == list(MEMBERS) and not request.done_reviews
    council_kinds = [e.council.WhichOneof("event") for e in resumed if e.HasField("council")]
    assert "answer" not in council_kinds and "review" in council_kinds
    answer = resumed[-1].message
    assert (answer.id, answer.content, answer.status) == (interrupted.id, CHAIRMAN_TEXT, "complete")
    assert [a.model for a in answer.council.answers] == list(MEMBERS)
    assert len(answer.council.reviews) == 2 and answer.council.chairman.text == CHAIRMAN_TEXT

    # Delivered (so counted) once, never discarded.
    await eventually(lambda: published.of(answer.id)[0])
    await asyncio.sleep(0.3)
    delivered, discarded = published.of(answer.id)
    assert len(delivered) == 1 and not discarded
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in conversations.ResumeMessage(
            conversations_pb2.ResumeMessageRequest(
                user_id=owner, conversation_id=conversation_id, message_id=answer.id
            )
        ):
            pass
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def _interrupted_after_stage_2(db: Database, owner: str, conversation_id: str) -> str:
    """A message whose stories process died after storing stage 2 (as the
    writer stores it), its claim lapsed."""
    record = conversations_pb2.CouncilRecord(
        answers=[
            council_pb2.MemberAnswer(model=model, text=f"Answer of {model}.", usage=usage())
            for model in MEMBERS
        ],
        reviews=[
            council_pb2.MemberReview(
                model=MEMBERS[0], text="FINAL RANKING:\n1. Response A",
                ranking=["Response A"], ranking_parsed=True, usage=usage(),
            )
        ],
        aggregate=council_pb2.AggregateRanking(
            members=[council_pb2.RankedMember(model=MEMBERS[1], average_rank=1.0, votes=1)]
        ),
    )
    message_id = uuid.uuid4()
    async with db.session_scope() as session:
        conversation = await session.get(Conversation, uuid.UUID(conversation_id))
        session.add(
            ConversationMessage(
                conversation_id=conversation.id, role="user", content="Who did it?"
            )
        )
        await session.flush()
        session.add(
            ConversationMessage(
                id=message_id,
                conversation_id=conversation.id,
                role="assistant",
                status="answering",
                council=record_to_json(record),
            )
        )
        conversation.writing_message_id = message_id
        conversation.writing_until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    return str(message_id)


async def test_a_message_whose_process_died_after_stage_2_resumes_at_the_chairman(
    conversations, double, db, published
):
    owner = user()
    conversation_id = await new_conversation(conversations, owner)
    message_id = await _interrupted_after_stage_2(db, owner, conversation_id)
    resumed = [
        event
        async for event in conversations.ResumeMessage(
            conversations_pb2.ResumeMessageRequest(
                user_id=owner, conversation_id=conversation_id, message_id=message_id
            )
        )
    ]
    request = double.requests[-1]
    assert len(request.done_answers) == 3 and len(request.done_reviews) == 1
    council_kinds = {e.council.WhichOneof("event") for e in resumed if e.HasField("council")}
    assert not council_kinds & {"answer", "review", "aggregate"}
    answer = resumed[-1].message
    assert answer.content == CHAIRMAN_TEXT
    assert [m.model for m in answer.council.aggregate.members] == [MEMBERS[1]]
    await eventually(lambda: published.of(message_id)[0])


async def test_a_new_question_gives_up_an_interrupted_message(
    conversations, double, db, published
):
    owner = user()
    conversation_id = await new_conversation(conversations, owner)
    message_id = await _interrupted_after_stage_2(db, owner, conversation_id)
    answered = await ask(conversations, owner, conversation_id, "Another question")
    assert answered[-1].message.content == CHAIRMAN_TEXT
    await eventually(lambda: published.of(message_id)[1])
    stored = await conversations.GetConversation(
        conversations_pb2.ConversationRef(user_id=owner, conversation_id=conversation_id)
    )
    assert [m.status for m in stored.messages if m.role == "assistant"] == ["failed", "complete"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in conversations.ResumeMessage(
            conversations_pb2.ResumeMessageRequest(
                user_id=owner, conversation_id=conversation_id, message_id=message_id
            )
        ):
            pass
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # Another user's, or an unknown one: not found.
    for who, which in ((user(), message_id), (owner, str(uuid.uuid4())), (owner, "nope")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in conversations.ResumeMessage(
                conversations_pb2.ResumeMessageRequest(
                    user_id=who, conversation_id=conversation_id, message_id=which
                )
            ):
                pass
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
