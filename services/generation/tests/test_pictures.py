"""Picture stories (PicturesService) over real gRPC, Postgres and NATS, with
the real billing service: the image sent to a (fake) Mistral vision model as
a data-URL content chunk, the offline generator's story from image facts,
child-safe calls moderated (direction and both languages), and metering:
one generation, billed once; nothing for a refused direction."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from fabula.billing.v1 import billing_pb2, billing_pb2_grpc
from fabula.generation.v1 import generation_pb2, generation_pb2_grpc, pictures_pb2, pictures_pb2_grpc
from fabula_billing.app import create_app as create_billing_app
from fabula_billing.settings import Settings as BillingSettings
from fabula_common.context import CHILD_SAFE_HEADER
from fabula_common.db import Database
from fabula_common.errors import error_details
from fabula_common.money import from_money
from fabula_common.testing import free_port, running_app
from fabula_generation.app import create_app
from fabula_generation.generations.models import Generation
from fabula_generation.pictures.facts import read_facts
from fabula_generation.pictures.offline_story import compose_story
from fabula_generation.settings import Settings
from PIL import Image
from sqlalchemy import select

PRICES = {"mistral-small-latest": {"prompt": "1000", "completion": "2000"}}
CHILD = ((CHILD_SAFE_HEADER, "1"),)


def png(colour: tuple[int, int, int], size: tuple[int, int] = (80, 40)) -> bytes:
    image = Image.new("RGB", size, colour)
    # A smaller patch of a second colour.
    image.paste((30, 60, 210), (0, 0, size[0] // 4, size[1] // 4))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


RED_DRAWING = png((210, 30, 30))


@pytest.fixture(scope="module")
async def billing(test_database, test_stream) -> AsyncIterator[billing_pb2_grpc.BillingServiceStub]:
    async with running_app(create_billing_app(BillingSettings(grpc_port=free_port()))) as address:
        os.environ["BILLING_ADDR"] = address
        async with grpc.aio.insecure_channel(address) as channel:
            yield billing_pb2_grpc.BillingServiceStub(channel)
        del os.environ["BILLING_ADDR"]


@pytest.fixture(scope="module")
async def db(test_database) -> AsyncIterator[Database]:
    database = Database(Settings())
    yield database
    await database.dispose()


@asynccontextmanager
async def serving(**overrides) -> AsyncIterator[pictures_pb2_grpc.PicturesServiceStub]:
    settings = Settings(grpc_port=free_port(), **{"provider": "offline", **overrides})
    async with (
        running_app(create_app(settings)) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        stub = pictures_pb2_grpc.PicturesServiceStub(channel)
        # The same process's GenerationService, for the suggestions test.
        stub.generation = generation_pb2_grpc.GenerationServiceStub(channel)
        yield stub


def serving_mistral(fake_mistral):
    return serving(
        provider="mistral",
        mistral_api_key="sk-test",
        mistral_server_url=fake_mistral.url,
        prices=PRICES,
    )


def picture(user_id: str, direction: str = "", image: bytes = RED_DRAWING) -> pictures_pb2.PictureStoryRequest:
    return pictures_pb2.PictureStoryRequest(
        user_id=user_id,
        subject=generation_pb2.SubjectRef(kind="drawing", id=str(uuid.uuid4())),
        generation_id=str(uuid.uuid4()),
        delivery=generation_pb2.DELIVERY_ON_COMPLETION,
        image=image,
        image_content_type="image/png",
        direction=direction,
    )


async def rows_for_user(db: Database, user_id: str) -> list[Generation]:
    async with db.session_scope() as session:
        query = select(Generation).where(Generation.user_id == user_id)
        return list((await session.scalars(query)).all())


async def settled_usage(billing, user_id: str, generation_id: str) -> billing_pb2.UsageLog:
    async with asyncio.timeout(15):
        while True:
            page = await billing.ListUsageLogs(billing_pb2.ListUsageLogsRequest(user_id=user_id, limit=100))
            for log in page.logs:
                if log.generation_id == generation_id:
                    return log
            await asyncio.sleep(0.05)


def test_image_facts_name_the_main_colours_and_the_shape():
    facts = read_facts(RED_DRAWING)
    assert (facts.width, facts.height, facts.orientation) == (80, 40, "wide")
    assert [(c.en, c.de) for c in facts.colours[:2]] == [("red", "rot"), ("blue", "blau")]
    story = compose_story(facts, "a fox", "seed")
    assert story == compose_story(facts, "a fox", "seed")  # deterministic
    assert "red" in story["text_en"] and "Rot" in story["text_de"] and "a fox" in story["text_en"]


async def test_the_offline_generator_writes_from_image_facts_and_counts_one_generation(
    billing, db
):
    user_id = str(uuid.uuid4())
    async with serving() as stub:
        request = picture(user_id, "a dragon who bakes")
        story = await stub.WritePictureStory(request)

    assert (story.provider, story.is_language_model) == ("offline", False)
    assert "red" in story.text_en.lower() and "Rot" in story.text_de
    assert story.title_en and story.title_de and story.duration_ms >= 0
    assert not story.moderation.checked  # not a child-safe account
    (row,) = await rows_for_user(db, user_id)
    assert (str(row.id), row.purpose, row.outcome) == (request.generation_id, "picture_story", "completed")
    log = await settled_usage(billing, user_id, request.generation_id)
    assert (log.operation, log.counted) == ("picture_story", True)
    usage = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    assert (usage.generations_used, usage.generations_reserved) == (1, 0)


async def test_bytes_that_are_no_image_are_refused_before_anything_is_reserved(billing, db):
    user_id = str(uuid.uuid4())
    async with serving() as stub:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.WritePictureStory(picture(user_id, image=b"just some text, renamed .png"))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a readable" in refused.value.details()
    assert await rows_for_user(db, user_id) == []


async def test_mistral_sees_the_image_as_a_data_url_chunk_and_is_billed_once(
    billing, db, fake_mistral
):
    user_id = str(uuid.uuid4())
    async with serving_mistral(fake_mistral) as stub:
        request = picture(user_id, "the fox finds a friend")
        story = await stub.WritePictureStory(request)

    (sent,) = fake_mistral.requests
    user_content = sent["messages"][-1]["content"]
    image_chunk = next(chunk for chunk in user_content if chunk["type"] == "image_url")
    assert image_chunk["image_url"]["url"] == (
        "data:image/png;base64," + base64.b64encode(RED_DRAWING).decode()
    )
    text_chunk = next(chunk for chunk in user_content if chunk["type"] == "text")
    assert "the fox finds a friend" in text_chunk["text"]
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["title_en", "text_en", "title_de", "text_de"]
    assert not fake_mistral.moderations  # not a child-safe account
    assert (story.provider, story.is_language_model) == ("mistral", True)
    assert story.usage.prompt_tokens >= 1000  # the image's tokens, as the provider reported

    log = await settled_usage(billing, user_id, request.generation_id)
    cost = from_money(story.usage.cost)
    assert (log.operation, log.counted, from_money(log.cost)) == ("picture_story", True, cost)
    usage = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    assert usage.generations_used == 1 and from_money(usage.cost_used) == cost


async def test_an_openai_compatible_vision_model_sees_the_image_and_is_billed_once(
    billing, db, fake_openai
):
    """A local vision model (Ollama, vLLM, llama.cpp) through the openai SDK:
    the same data-URL image chunk, the structured bilingual answer, one
    generation billed at the reported usage."""
    user_id = str(uuid.uuid4())
    async with serving(
        provider="openai",
        openai_base_url=fake_openai.base_url,
        openai_model="llava",
        prices={"llava": {"prompt": "1000", "completion": "2000"}},
    ) as stub:
        request = picture(user_id, "the fox finds a friend")
        story = await stub.WritePictureStory(request)

    (sent,) = fake_openai.requests
    assert sent["model"] == "llava" and not sent.get("stream")
    user_content = sent["messages"][-1]["content"]
    image_chunk = next(chunk for chunk in user_content if chunk["type"] == "image_url")
    assert image_chunk["image_url"]["url"] == (
        "data:image/png;base64," + base64.b64encode(RED_DRAWING).decode()
    )
    assert sent["response_format"]["type"] == "json_schema"
    assert (story.provider, story.model, story.is_language_model) == ("openai", "llava", True)
    assert story.title_en and story.text_en and story.title_de and story.text_de
    assert story.usage.prompt_tokens > 0 and story.usage.completion_tokens > 0

    log = await settled_usage(billing, user_id, request.generation_id)
    assert (log.operation, log.counted, log.model) == ("picture_story", True, "llava")
    assert from_money(log.cost) == from_money(story.usage.cost) > 0
    usage = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    assert usage.generations_used == 1


async def test_a_child_safe_call_is_instructed_and_moderated_in_both_languages(
    billing, db, fake_mistral
):
    user_id = str(uuid.uuid4())
    async with serving_mistral(fake_mistral) as stub:
        story = await stub.WritePictureStory(picture(user_id, "a picnic"), metadata=CHILD)

    (sent,) = fake_mistral.requests
    assert "under 13" in sent["messages"][0]["content"]  # the child-safe instructions lead
    direction_check, story_check = fake_mistral.moderations
    assert direction_check["input"] == ["a picnic"]
    assert direction_check["model"] == "mistral-moderation-latest"
    assert len(story_check["input"]) == 2  # English and German
    assert story.moderation.checked and story.moderation.checker == "mistral"
    assert not story.moderation.flagged


async def test_a_refused_direction_is_content_blocked_and_costs_nothing(billing, db, fake_mistral):
    user_id = str(uuid.uuid4())
    async with serving_mistral(fake_mistral) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as blocked:
            await stub.WritePictureStory(picture(user_id, "lots of blood"), metadata=CHILD)

    assert blocked.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = error_details(blocked.value)
    assert (details.reason, details.metadata["part"]) == ("content-blocked", "direction")
    assert not fake_mistral.requests  # the model was never asked
    assert await rows_for_user(db, user_id) == []
    usage = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    assert (usage.generations_used, usage.generations_reserved) == (0, 0)


async def test_a_refused_story_is_content_blocked_paid_as_tokens_and_not_counted(
    billing, db, fake_mistral
):
    user_id = str(uuid.uuid4())
    # The fake's structured answers are built from its story text, which mentions a lantern.
    fake_mistral.flag_words = ("lantern",)
    async with serving_mistral(fake_mistral) as stub:
        request = picture(user_id)
        with pytest.raises(grpc.aio.AioRpcError) as blocked:
            await stub.WritePictureStory(request, metadata=CHILD)

    details = error_details(blocked.value)
    assert details.reason == "content-blocked"
    assert details.metadata["part"] in ("story_en", "story_de")
    (row,) = await rows_for_user(db, user_id)
    assert (row.outcome, row.completion_tokens > 0) == ("failed", True)
    log = await settled_usage(billing, user_id, request.generation_id)
    assert (log.outcome, log.counted) == ("failed", False)
    usage = await billing.GetUsage(billing_pb2.GetUsageRequest(user_id=user_id))
    assert (usage.generations_used, usage.generations_reserved) == (0, 0)


async def test_the_offline_word_list_guards_a_child_safe_direction(billing, db):
    user_id = str(uuid.uuid4())
    async with serving() as stub:
        with pytest.raises(grpc.aio.AioRpcError) as blocked:
            await stub.WritePictureStory(picture(user_id, "the knight kills everyone"), metadata=CHILD)
        story = await stub.WritePictureStory(picture(user_id, "a tea party"), metadata=CHILD)
    details = error_details(blocked.value)
    assert (details.metadata["part"], details.metadata["checker"]) == ("direction", "offline-wordlist")
    assert story.moderation.checked and story.moderation.checker == "offline-wordlist"


async def test_a_child_safe_suggestions_genre_is_moderated_before_anything_is_counted(
    billing, db, fake_mistral
):
    user_id = str(uuid.uuid4())
    async with serving_mistral(fake_mistral) as stub:
        suggestions = stub.generation
        with pytest.raises(grpc.aio.AioRpcError) as blocked:
            await suggestions.SuggestStories(
                generation_pb2.SuggestStoriesRequest(user_id=user_id, genre="weapon fights"),
                metadata=CHILD,
            )
        fine = await suggestions.SuggestStories(
            generation_pb2.SuggestStoriesRequest(user_id=user_id, genre="fairy tale", count=1),
            metadata=CHILD,
        )
    assert error_details(blocked.value).metadata["part"] == "direction"
    assert len(fine.ideas) == 1
    # Each genre, then the ideas the model wrote, were checked; the model was asked once.
    checked = [m["input"][0] for m in fake_mistral.moderations]
    assert checked[:2] == ["weapon fights", "fairy tale"] and len(checked) == 3
    assert len(fake_mistral.requests) == 1
    assert "under 13" in fake_mistral.requests[0]["messages"][0]["content"]
