"""Memory, author's note, favourites, lore entries and the model's context
(UpdateStory, the lore RPCs, GetContext) over real gRPC, with the real
generation (offline provider) and billing services."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable

import grpc
import pytest
from fabula.stories.v1 import stories_pb2, stories_pb2_grpc
from fabula_billing.app import create_app as create_billing_app
from fabula_billing.settings import Settings as BillingSettings
from fabula_common.errors import error_reason
from fabula_common.testing import free_port, running_app
from fabula_generation.app import create_app as create_generation_app
from fabula_generation.settings import Settings as GenerationSettings
from fabula_stories.app import create_app
from fabula_stories.settings import Settings

Stub = stories_pb2_grpc.StoriesServiceStub
AND_ALL = stories_pb2.SECONDARY_KEYS_LOGIC_AND_ALL
AND_ANY = stories_pb2.SECONDARY_KEYS_LOGIC_AND_ANY
NOT_ANY = stories_pb2.SECONDARY_KEYS_LOGIC_NOT_ANY
# A word the offline generator never writes unless told to.
KEY = "astrolabe"


@pytest.fixture(scope="module")
async def stories(test_database, test_stream) -> AsyncIterator[Stub]:
    billing = create_billing_app(BillingSettings(grpc_port=free_port()))
    async with running_app(billing) as billing_addr:
        generation = create_generation_app(
            GenerationSettings(grpc_port=free_port(), billing_addr=billing_addr, provider="offline")
        )
        async with running_app(generation) as generation_addr:
            settings = Settings(grpc_port=free_port(), generation_addr=generation_addr)
            async with (
                running_app(create_app(settings)) as address,
                grpc.aio.insecure_channel(address) as channel,
            ):
                yield Stub(channel)


def new_user() -> str:
    return str(uuid.uuid4())


async def create(stories: Stub, user_id: str, **fields) -> stories_pb2.Story:
    fields.setdefault("genre", "mystery")
    fields.setdefault("characters", ["Mara"])
    return await stories.CreateStory(stories_pb2.CreateStoryRequest(user_id=user_id, **fields))


async def continue_story(stories: Stub, user_id: str, story_id: str, direction: str):
    request = stories_pb2.ContinueStoryRequest(
        user_id=user_id, story_id=story_id, direction=direction
    )
    events = [event async for event in stories.ContinueStory(request)]
    return events[-1].segment


async def update(stories: Stub, user_id: str, story_id: str, **fields) -> stories_pb2.Story:
    return await stories.UpdateStory(
        stories_pb2.UpdateStoryRequest(user_id=user_id, story_id=story_id, **fields)
    )


async def add_lore(stories: Stub, user_id: str, story_id: str, **fields) -> stories_pb2.LoreEntry:
    fields.setdefault("text", "An old brass instrument that points at lost things.")
    return await stories.CreateLoreEntry(
        stories_pb2.CreateLoreEntryRequest(user_id=user_id, story_id=story_id, **fields)
    )


async def context_of(stories: Stub, user_id: str, story_id: str, **fields):
    return await stories.GetContext(
        stories_pb2.GetContextRequest(user_id=user_id, story_id=story_id, **fields)
    )


async def refused(call: Awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return error.value


# --- UpdateStory -------------------------------------------------------------------


async def test_update_changes_only_the_fields_given_and_answers_the_basic_story(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id, title="Before")

    updated = await update(
        stories, user_id, story.id, title="  After  ", memory="Mara cannot swim.",
        authors_note="Keep it eerie.", is_favorite=True,
    )

    assert (updated.title, updated.memory, updated.authors_note, updated.is_favorite) == (
        "After", "Mara cannot swim.", "Keep it eerie.", True
    )
    assert updated.segment_count == 1 and list(updated.segments) == []
    assert updated.updated_at.ToDatetime() > story.updated_at.ToDatetime()
    assert (updated.genre, list(updated.characters)) == (story.genre, list(story.characters))

    only_favorite = await update(stories, user_id, story.id, is_favorite=False)
    assert (only_favorite.title, only_favorite.memory, only_favorite.is_favorite) == (
        "After", "Mara cannot swim.", False
    )

    cleared = await update(stories, user_id, story.id, memory="", authors_note="")
    assert (cleared.memory, cleared.authors_note, cleared.title) == ("", "", "After")


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"title": "   "}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"memory": "m" * 10_001}, "memory"),
        ({"authors_note": "n" * 2_001}, "authors_note"),
        ({"memory": "nul\x00"}, "memory"),
    ],
)
async def test_update_refuses_bad_values_naming_the_field(stories: Stub, fields, detail):
    user_id = new_user()
    story = await create(stories, user_id)

    error = await refused(update(stories, user_id, story.id, **fields))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert detail in error.details()


# --- Lore entries -----------------------------------------------------------------


async def test_lore_entries_are_created_listed_by_priority_read_updated_and_deleted(
    stories: Stub,
):
    user_id = new_user()
    story = await create(stories, user_id)
    low = await add_lore(stories, user_id, story.id, keys=[" astrolabe ", "Astrolabe"], priority=1)
    high = await add_lore(
        stories, user_id, story.id, keys=["ferry"], secondary_keys=["dawn"],
        secondary_logic=NOT_ANY, priority=5, enabled=False, text="The ferry.",
    )
    constant = await add_lore(stories, user_id, story.id, constant=True, text="Always.")

    assert list(low.keys) == ["astrolabe"]  # trimmed; case-insensitive duplicates dropped
    assert (low.enabled, low.secondary_logic, low.story_id) == (True, AND_ANY, story.id)
    assert (high.enabled, high.secondary_logic, list(high.secondary_keys)) == (
        False, NOT_ANY, ["dawn"]
    )
    listed = await stories.ListLoreEntries(stories_pb2.StoryRef(user_id=user_id, story_id=story.id))
    assert [entry.id for entry in listed.entries] == [high.id, low.id, constant.id]
    ref = stories_pb2.LoreEntryRef(user_id=user_id, story_id=story.id, entry_id=low.id)
    assert await stories.GetLoreEntry(ref) == low

    changed = await stories.UpdateLoreEntry(
        stories_pb2.UpdateLoreEntryRequest(
            user_id=user_id, story_id=story.id, entry_id=low.id,
            fields=["text", "secondary_logic", "priority"],
            text="Changed.", secondary_logic=AND_ALL, priority=7, keys=["ignored"],
        )
    )
    assert (changed.text, changed.secondary_logic, changed.priority) == ("Changed.", AND_ALL, 7)
    assert list(changed.keys) == ["astrolabe"]  # not in `fields`: untouched
    assert changed.updated_at.ToDatetime() > low.updated_at.ToDatetime()

    await stories.DeleteLoreEntry(ref)
    assert (await refused(stories.GetLoreEntry(ref))).code() == grpc.StatusCode.NOT_FOUND
    listed = await stories.ListLoreEntries(stories_pb2.StoryRef(user_id=user_id, story_id=story.id))
    assert [entry.id for entry in listed.entries] == [high.id, constant.id]


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"keys": []}, "at least one key"),
        ({"keys": ["  "]}, "keys item"),
        ({"keys": ["k" * 101]}, "keys item"),
        ({"keys": [f"k{n}" for n in range(21)]}, "keys"),
        ({"keys": ["a"], "secondary_keys": [f"k{n}" for n in range(21)]}, "secondary_keys"),
        ({"keys": ["a"], "text": "  "}, "text"),
        ({"keys": ["a"], "text": "t" * 4001}, "text"),
        ({"keys": ["a"], "priority": 1001}, "priority"),
        ({"keys": ["a"], "priority": -1001}, "priority"),
        ({"keys": ["a"], "secondary_logic": 9}, "secondary_logic"),
    ],
)
async def test_invalid_lore_entries_are_refused_naming_the_field(stories: Stub, fields, detail):
    user_id = new_user()
    story = await create(stories, user_id)

    error = await refused(add_lore(stories, user_id, story.id, **fields))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert detail in error.details()


async def test_an_update_must_leave_a_valid_entry_and_name_known_fields(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)
    entry = await add_lore(stories, user_id, story.id, keys=["astrolabe"])

    def change(**fields):
        return stories.UpdateLoreEntry(
            stories_pb2.UpdateLoreEntryRequest(
                user_id=user_id, story_id=story.id, entry_id=entry.id, **fields
            )
        )

    for fields, detail in [
        ({"fields": ["keys"], "keys": []}, "at least one key"),
        ({"fields": ["colour"]}, "colour"),
        ({"fields": []}, "fields"),
    ]:
        error = await refused(change(**fields))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert detail in error.details()
    # A constant entry needs no key.
    constant = await change(fields=["keys", "constant"], keys=[], constant=True)
    assert (list(constant.keys), constant.constant) == ([], True)


async def test_a_story_holds_at_most_200_lore_entries(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)
    await asyncio.gather(
        *(add_lore(stories, user_id, story.id, keys=[f"key{n}"]) for n in range(200))
    )

    error = await refused(add_lore(stories, user_id, story.id, keys=["one more"]))

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "200" in error.details()


async def test_another_users_story_and_entries_are_not_found(stories: Stub):
    owner, intruder = new_user(), new_user()
    story = await create(stories, owner)
    entry = await add_lore(stories, owner, story.id, keys=["astrolabe"])
    other_story = await create(stories, intruder)
    ref = {"user_id": intruder, "story_id": story.id}
    entry_ref = stories_pb2.LoreEntryRef(**ref, entry_id=entry.id)
    calls = [
        update(stories, intruder, story.id, memory="mine now"),
        add_lore(stories, intruder, story.id, keys=["x"]),
        stories.ListLoreEntries(stories_pb2.StoryRef(**ref)),
        stories.GetLoreEntry(entry_ref),
        stories.UpdateLoreEntry(
            stories_pb2.UpdateLoreEntryRequest(**ref, entry_id=entry.id, fields=["text"], text="x")
        ),
        stories.DeleteLoreEntry(entry_ref),
        # The entry through a story of the intruder's own.
        stories.GetLoreEntry(
            stories_pb2.LoreEntryRef(user_id=intruder, story_id=other_story.id, entry_id=entry.id)
        ),
        stories.GetLoreEntry(stories_pb2.LoreEntryRef(**ref, entry_id="not-an-id")),
        context_of(stories, intruder, story.id),
    ]
    for call in calls:
        error = await refused(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(error) == "not-found"
    owned = await stories.GetLoreEntry(
        stories_pb2.LoreEntryRef(user_id=owner, story_id=story.id, entry_id=entry.id)
    )
    assert owned == entry


# --- GetContext -------------------------------------------------------------------


async def test_the_context_shows_memory_always_and_lore_only_once_its_key_appears(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)
    await update(stories, user_id, story.id, memory="Mara cannot swim.", authors_note="Eerie.")
    keyed = await add_lore(stories, user_id, story.id, keys=[KEY])
    constant = await add_lore(
        stories, user_id, story.id, constant=True, text="The island is small."
    )
    assert KEY not in story.segments[0].text.lower()

    before = await context_of(stories, user_id, story.id)

    assert before.memory == "Mara cannot swim." and before.authors_note == "Eerie."
    assert [hit.entry_id for hit in before.lore] == [constant.id]
    assert [s.segment_id for s in before.segments] == [story.segments[0].id]

    segment = await continue_story(stories, user_id, story.id, f"Mara finds the {KEY}")
    assert KEY in segment.text.lower()
    after = await context_of(stories, user_id, story.id, direction="She opens it.")

    assert [(hit.entry_id, hit.matched) for hit in after.lore] == [
        (constant.id, "constant"), (keyed.id, KEY)
    ]
    assert [s.position for s in after.segments] == [1, 2]
    assert after.direction == "She opens it."
    assert after.budget.max_tokens == Settings().context_max_tokens
    assert 0 < after.budget.used_tokens <= after.budget.max_tokens
    assert after.budget.segments_omitted == 0
    # The prompt generation would send, with every section in it.
    [system, user] = after.prompt
    assert (system.role, user.role) == ("system", "user")
    for part in ("Mara cannot swim.", "The island is small.", keyed.text, segment.text,
                 "[Author's note: Eerie.]", "She opens it."):
        assert part in user.content

    # The context after the opening does not see the second segment.
    earlier = await context_of(
        stories, user_id, story.id, after_segment_id=story.segments[0].id
    )
    assert [hit.entry_id for hit in earlier.lore] == [constant.id]
    assert [s.position for s in earlier.segments] == [1]
    # A direction that names the key calls the entry up too.
    directed = await context_of(
        stories, user_id, story.id, after_segment_id=story.segments[0].id,
        direction=f"The {KEY.upper()} glows.",
    )
    assert keyed.id in [hit.entry_id for hit in directed.lore]


async def test_a_disabled_entry_is_never_in_the_context(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)
    entry = await add_lore(stories, user_id, story.id, keys=[KEY], enabled=False)

    context = await context_of(stories, user_id, story.id, direction=f"the {KEY}")

    assert entry.id not in [hit.entry_id for hit in context.lore]


async def test_the_context_after_an_unknown_segment_is_not_found(stories: Stub):
    user_id = new_user()
    story = await create(stories, user_id)
    other = await create(stories, user_id)

    for segment_id in (str(uuid.uuid4()), "nope", other.segments[0].id):
        error = await refused(context_of(stories, user_id, story.id, after_segment_id=segment_id))
        assert error.code() == grpc.StatusCode.NOT_FOUND, segment_id
