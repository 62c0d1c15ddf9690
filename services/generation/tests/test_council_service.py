"""The council over real gRPC, Postgres and NATS, metered by the real billing
service: stages streamed in order, members failing, the chairman falling
back, resumed stages, and the message counted as one generation."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import nats
import pytest
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.generation.v1 import council_pb2, council_pb2_grpc
from fabula.stories.v1 import events_pb2 as stories_events
from fabula_billing.app import create_app as create_billing_app
from fabula_billing.settings import Settings as BillingSettings
from fabula_common.context import CHILD_SAFE_HEADER
from fabula_common.db import Database
from fabula_common.errors import error_reason
from fabula_common.messaging.bus import subject_for
from fabula_common.messaging.headers import MSG_ID_HEADER
from fabula_common.testing import free_port, running_app
from fabula_generation.app import create_app
from fabula_generation.generations.models import Generation
from fabula_generation.settings import Settings
from sqlalchemy import select

OFFLINE_COUNCIL = ["offline/alpha", "offline/beta", "offline/gamma"]
FREE_PLAN_GENERATIONS = 5
SERVER_ERROR = "fake-openai:server-error"


@pytest.fixture(scope="module")
async def billing_addr(test_database, test_stream) -> AsyncIterator[str]:
    async with running_app(create_billing_app(BillingSettings(grpc_port=free_port()))) as address:
        os.environ["BILLING_ADDR"] = address
        yield address
        del os.environ["BILLING_ADDR"]


@pytest.fixture(scope="module")
async def billing(billing_addr: str) -> AsyncIterator[billing_pb2_grpc.BillingServiceStub]:
    async with grpc.aio.insecure_channel(billing_addr) as channel:
        yield billing_pb2_grpc.BillingServiceStub(channel)


@pytest.fixture(scope="module")
async def db(test_database):
    database = Database(Settings())
    yield database
    await database.dispose()


@asynccontextmanager
async def council_serving(**overrides) -> AsyncIterator[council_pb2_grpc.CouncilServiceStub]:
    settings = Settings(grpc_port=free_port(), **{"provider": "offline", **overrides})
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield council_pb2_grpc.CouncilServiceStub(channel)


@pytest.fixture(scope="module")
async def council(billing_addr):
    async with council_serving() as stub:
        yield stub


def deliberate_request(**fields) -> council_pb2.DeliberateRequest:
    defaults = dict(
        user_id=str(uuid.uuid4()),
        message_id=str(uuid.uuid4()),
        conversation_id=str(uuid.uuid4()),
        question="Which is the best way to keep bread fresh?",
    )
    return council_pb2.DeliberateRequest(**{**defaults, **fields})


async def deliberate(
    stub: council_pb2_grpc.CouncilServiceStub, request: council_pb2.DeliberateRequest
) -> list[council_pb2.CouncilEvent]:
    return [event async for event in stub.Deliberate(request, timeout=30)]


def of_kind(events: list[council_pb2.CouncilEvent], kind: str) -> list:
    return [getattr(event, kind) for event in events if event.WhichOneof("event") == kind]


async def message_rows(db: Database, message_id: str) -> list[Generation]:
    async with db.session_scope() as session:
        query = select(Generation).where(
            Generation.attributes["message_id"].astext == message_id
        )
        return list((await session.scalars(query)).all())


async def usage_of(billing: billing_pb2_grpc.BillingServiceStub, user_id: str) -> tuple[int, int]:
    """(generations used, generations reserved) of the user's plan."""
    usage = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    return usage.generations_used, usage.generations_reserved


async def settles_at(billing, user_id: str, expected: tuple[int, int]) -> None:
    async with asyncio.timeout(10):
        while await usage_of(billing, user_id) != expected:
            await asyncio.sleep(0.05)


async def publish_delivered(nats_url: str, user_id: str, message_id: str) -> None:
    """What stories publishes once it stored the council's message."""
    event = stories_events.GenerationDelivered(
        event_id=str(uuid.uuid4()), generation_id=message_id, user_id=user_id
    )
    nc = await nats.connect(nats_url, connect_timeout=2)
    try:
        await nc.jetstream().publish(
            subject_for(Settings(), "stories", "generation_delivered"),
            event.SerializeToString(),
            headers={MSG_ID_HEADER: event.event_id},
        )
    finally:
        await nc.close()


async def test_an_offline_council_streams_every_stage_in_order(council, billing, db, nats_url):
    request = deliberate_request(want_title=True)
    events = await deliberate(council, request)

    kinds = [event.WhichOneof("event") for event in events]
    # Stages in order: answers before reviews before the chairman, done last.
    assert [e.stage_started for e in events if e.WhichOneof("event") == "stage_started"] == [
        1,
        2,
        3,
    ]
    assert kinds.index("answer") < kinds.index("review") < kinds.index("aggregate")
    assert kinds.index("aggregate") < kinds.index("chairman") < kinds.index("title")
    assert kinds[-1] == "done"
    # Text streams per member within stage 1.
    deltas = of_kind(events, "delta")
    assert {d.model for d in deltas if d.stage == 1} == set(OFFLINE_COUNCIL)

    answers = of_kind(events, "answer")
    assert sorted(a.model for a in answers) == OFFLINE_COUNCIL
    assert all(a.text and not a.error for a in answers)
    assert len({a.text for a in answers}) == 3  # each member its own text
    for answer in answers:
        streamed = "".join(d.text for d in deltas if d.stage == 1 and d.model == answer.model)
        assert streamed.strip() == answer.text

    reviews = of_kind(events, "review")
    assert sorted(r.model for r in reviews) == OFFLINE_COUNCIL
    for review in reviews:
        assert review.ranking_parsed and len(review.ranking) == 3
        assert sorted(review.label_to_model.values()) == OFFLINE_COUNCIL
        assert set(review.ranking) == set(review.label_to_model)

    # Each member is ranked by the two others: its own vote is left out.
    (aggregate,) = of_kind(events, "aggregate")
    assert sorted(m.model for m in aggregate.members) == OFFLINE_COUNCIL
    assert all(m.votes == 2 and 1 <= m.average_rank <= 2 for m in aggregate.members)

    (chairman,) = of_kind(events, "chairman")
    assert chairman.model == "offline/alpha" and not chairman.fell_back_from
    assert chairman.text.startswith("[offline council]")
    (title,) = of_kind(events, "title")
    assert title
    (done,) = of_kind(events, "done")
    assert done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0
    # The whole deliberation's time: at least its slowest answer's.
    assert done.usage.duration_ms >= max(a.usage.duration_ms for a in answers)
    assert done.usage.duration_ms > 0

    # One generation reserved; counted only when the owner stores the message.
    await settles_at(billing, request.user_id, (0, 1))
    await publish_delivered(nats_url, request.user_id, request.message_id)
    await settles_at(billing, request.user_id, (1, 0))

    rows = await message_rows(db, request.message_id)
    by_purpose = {}
    for row in rows:
        by_purpose.setdefault(row.purpose, []).append(row)
    assert {p: len(r) for p, r in by_purpose.items()} == {
        "council_stage_1": 3,
        "council_stage_2": 3,
        "council_stage_3": 2,  # the chairman's answer and the title
        "council_message": 1,
    }
    for row in by_purpose["council_stage_1"]:
        # Cost only: no reservation of their own.
        assert row.reservation_id == "" and row.outcome == "completed"
        assert row.attributes["conversation_id"] == request.conversation_id
        assert row.attributes["stage"] == "1"
    (message,) = by_purpose["council_message"]
    assert str(message.id) == request.message_id == message.reservation_id
    assert message.delivery == "confirmed_by_owner" and message.cost_usd == 0

    # Each call's usage event reaches billing on its own: the message's may
    # come before the chairman's.
    expected = {
        "council_stage_1": (3, 0),
        "council_stage_2": (3, 0),
        "council_stage_3": (2, 0),
        "council_message": (1, 1),
    }
    calls: dict[str, tuple[int, int]] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            while calls != expected:
                breakdown = await billing.GetUsageBreakdown(
                    billing_pb2.GetUsageBreakdownRequest(user_id=request.user_id)
                )
                calls = {row.key: (row.calls, row.generations) for row in breakdown.by_operation}
                await asyncio.sleep(0.05)
    assert calls == expected


async def test_a_failing_member_does_not_sink_the_message(billing_addr, fake_openai, billing):
    async with council_serving(
        council_members="offline/alpha,offline/beta,openai/fake-model",
        openai_base_url=fake_openai.base_url,
    ) as stub:
        request = deliberate_request(question=f"Is this question broken? {SERVER_ERROR}")
        events = await deliberate(stub, request)

    answers = {a.model: a for a in of_kind(events, "answer")}
    assert not answers["offline/alpha"].error and not answers["offline/beta"].error
    failed = answers["openai/fake-model"]
    assert failed.error and not failed.text
    assert "500" in failed.error or "server" in failed.error.lower()
    # The members that answered review each other; the message completes.
    assert sorted(r.model for r in of_kind(events, "review")) == ["offline/alpha", "offline/beta"]
    assert of_kind(events, "chairman")[0].model == "offline/alpha"
    assert events[-1].WhichOneof("event") == "done"
    await settles_at(billing, request.user_id, (0, 1))


async def test_every_member_failing_is_unavailable_and_releases_the_reservation(
    billing_addr, fake_openai, billing, db
):
    async with council_serving(
        council_members="openai/model-one,openai/model-two",
        openai_base_url=fake_openai.base_url,
    ) as stub:
        request = deliberate_request(question=f"Anyone there? {SERVER_ERROR}")
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await deliberate(stub, request)

    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(failure.value) == "model-unavailable"
    assert "openai/model-one" in failure.value.details()
    assert "openai/model-two" in failure.value.details()
    # What was consumed is recorded; the one generation is given back.
    rows = await message_rows(db, request.message_id)
    assert sorted(row.purpose for row in rows) == [
        "council_message",
        "council_stage_1",
        "council_stage_1",
    ]
    assert all(row.outcome == "failed" for row in rows)
    await settles_at(billing, request.user_id, (0, 0))


async def test_a_failing_chairman_falls_back(billing_addr, fake_openai):
    async with council_serving(
        council_members=",".join(OFFLINE_COUNCIL),
        council_chairman="openai/chair",
        openai_base_url=fake_openai.base_url,
    ) as stub:
        events = await deliberate(
            stub, deliberate_request(question=f"Who decides? {SERVER_ERROR}")
        )

    (chairman,) = of_kind(events, "chairman")
    assert chairman.fell_back_from == "openai/chair"
    assert chairman.model == "offline/alpha" and chairman.text
    assert events[-1].WhichOneof("event") == "done"


async def test_stages_already_done_are_not_run_again(council, db):
    first = deliberate_request()
    events = await deliberate(council, first)
    answers, reviews = of_kind(events, "answer"), of_kind(events, "review")

    resumed = deliberate_request(
        user_id=first.user_id,
        conversation_id=first.conversation_id,
        done_answers=answers,
        done_reviews=reviews,
    )
    events = await deliberate(council, resumed)

    kinds = [event.WhichOneof("event") for event in events]
    assert "answer" not in kinds and "review" not in kinds
    assert of_kind(events, "chairman")[0].text
    purposes = sorted(row.purpose for row in await message_rows(db, resumed.message_id))
    assert purposes == ["council_message", "council_stage_3"]

    # With only the answers done, stage 2 runs and stage 1 does not.
    only_answers = deliberate_request(user_id=first.user_id, done_answers=answers)
    await deliberate(council, only_answers)
    purposes = sorted(row.purpose for row in await message_rows(db, only_answers.message_id))
    assert purposes.count("council_stage_1") == 0 and purposes.count("council_stage_2") == 3


async def test_a_spent_plan_is_refused_before_any_call(council, billing, db):
    user_id = str(uuid.uuid4())
    for _ in range(FREE_PLAN_GENERATIONS):
        await billing.ReserveGeneration(
            billing_pb2.ReserveGenerationRequest(
                user_id=user_id, reservation_id=str(uuid.uuid4())
            )
        )
    request = deliberate_request(user_id=user_id)
    with pytest.raises(grpc.aio.AioRpcError) as refusal:
        await deliberate(council, request)

    assert refusal.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(refusal.value) == "quota-exceeded"
    assert await message_rows(db, request.message_id) == []


CHILD = ((CHILD_SAFE_HEADER, "1"),)


async def test_a_child_safe_council_checks_the_question_first_and_streams_only_read_text(
    council, billing, db
):
    user_id = str(uuid.uuid4())
    blocked = deliberate_request(user_id=user_id, question="How does the knight kill everyone?")
    with pytest.raises(grpc.aio.AioRpcError) as refusal:
        [event async for event in council.Deliberate(blocked, timeout=30, metadata=CHILD)]
    assert error_reason(refusal.value) == "content-blocked"
    # Refused before anything was reserved or asked of a model.
    assert await message_rows(db, blocked.message_id) == []
    assert await usage_of(billing, user_id) == (0, 0)

    request = deliberate_request(user_id=user_id, question="Which animal makes the best friend?")
    events = [event async for event in council.Deliberate(request, timeout=30, metadata=CHILD)]
    kinds = [event.WhichOneof("event") for event in events]
    # Every stage arrives whole (each text moderated), none as it is written.
    assert "delta" not in kinds
    assert kinds.count("answer") == 3 and kinds.count("review") == 3
    assert kinds[-2:] == ["chairman", "done"]
    assert of_kind(events, "chairman")[0].text


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"question": ""}, "question is required"),
        ({"question": "x" * 8001}, "at most 8000"),
        ({"message_id": "not-a-uuid"}, "message_id must be a UUID"),
        (
            {"history": [council_pb2.ConversationTurn(role="user", content="q")] * 51},
            "at most 50 turns",
        ),
    ],
)
async def test_invalid_requests_are_refused(council, fields, complaint):
    with pytest.raises(grpc.aio.AioRpcError) as refusal:
        await deliberate(council, deliberate_request(**fields))
    assert refusal.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert complaint in refusal.value.details()


async def test_clarifying_questions_are_the_chairmans_and_metered_as_cost(council, db):
    request = council_pb2.ClarifyingQuestionsRequest(
        user_id=str(uuid.uuid4()),
        conversation_id=str(uuid.uuid4()),
        question="How should I plan it?",
        max_questions=2,
    )
    response = await council.ClarifyingQuestions(request, timeout=10)

    assert len(response.questions) == 2
    assert all(question.endswith("?") for question in response.questions)
    async with db.session_scope() as session:
        query = select(Generation).where(Generation.user_id == request.user_id)
        rows = list((await session.scalars(query)).all())
    assert [(row.purpose, row.reservation_id) for row in rows] == [("council_clarify", "")]
