"""The Python client (fabula_client) against real processes: sync and async,
server-sent events as iterators, problem+json as typed exceptions, retries of
a busy story, token refresh, and the README's ten lines run as written; and
the other resources: photos uploaded and processed, tutorials, drawings and
picture stories, lore, revisions, sharing, the account's export."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import re
import subprocess
import sys
import threading
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest
from fabula_client import (
    AsyncFabula,
    AuthenticationError,
    Fabula,
    NotFound,
    QuotaExceeded,
    RetryPolicy,
    SegmentWritten,
    StoryBusy,
    StoryComplete,
    StoryWritten,
    TextDelta,
    Tokens,
)
from fabula_client.models import Photo
from PIL import Image

pytestmark = pytest.mark.e2e

README = Path(__file__).parents[3] / "libs" / "client" / "README.md"
PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"client-{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture
def client(stack):
    with Fabula(stack.base_url) as fabula:
        fabula.auth.register(new_email(), PASSWORD)
        yield fabula


def test_the_readme_example_runs_as_written(stack, tmp_path):
    [example] = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[:1]
    assert len(example.strip().splitlines()) <= 11  # the import line and ten more
    assert example in (README.parents[2] / "README.md").read_text()  # the same lines there
    result = subprocess.run(
        [sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "FABULA_API_URL": stack.base_url}, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Mara" in result.stdout
    assert result.stdout.rstrip().endswith("3 segments; 3 generations used")
    with zipfile.ZipFile(tmp_path / "story.epub") as book:
        assert book.read("mimetype") == b"application/epub+zip"


def test_a_story_streams_as_typed_events_and_errors_are_typed(client):
    story = client.stories.create(genre="mystery", characters=["Mara"], opening_line="The fog came early.")
    assert story.segments[0].text.startswith("The fog came early.")

    events = list(client.stories.continue_(story.id, "Mara finds a key", stream=True))
    deltas = [event for event in events if isinstance(event, TextDelta)]
    assert len(deltas) > 10 and isinstance(events[-1], SegmentWritten)
    written = events[-1].segment
    assert "".join(delta.text for delta in deltas).strip() == written.text.strip()
    assert client.stories.get(story.id).segments[-1].id == written.id

    with pytest.raises(NotFound) as missing:
        client.stories.get(str(uuid.uuid4()))
    assert missing.value.status == 404 and missing.value.type.endswith("/not-found")

    client.stories.end(story.id)
    with pytest.raises(StoryComplete) as complete:
        client.stories.continue_(story.id)
    assert complete.value.status == 409 and complete.value.title == "Story complete"
    # Opening, continuation, ending: two more and the free plan's five are used.
    client.stories.create(genre="fantasy")
    client.stories.create(genre="fantasy")
    with pytest.raises(QuotaExceeded) as quota:
        client.stories.create(genre="fantasy")
    assert quota.value.plan == "free" and quota.value.quota == "generations"
    assert quota.value.limit == 5 and quota.value.resets_at


def test_a_story_is_created_as_a_stream_of_its_opening(client):
    events = list(client.stories.create("mystery", characters=["Mara"], stream=True,
                                        idempotency_key="create-stream-1"))

    deltas = [event for event in events if isinstance(event, TextDelta)]
    assert len(deltas) > 5 and isinstance(events[-1], StoryWritten)
    assert all(isinstance(event, TextDelta) for event in events[:-1])
    story = events[-1].story
    assert story.characters == ["Mara"] and story.title
    assert "".join(delta.text for delta in deltas) == story.segments[0].text
    assert client.stories.get(story.id) == story
    # A retry with the same key: just the story, nothing more used.
    again = list(client.stories.create("mystery", characters=["Mara"], stream=True,
                                       idempotency_key="create-stream-1"))
    assert [type(event) for event in again] == [StoryWritten]
    assert again[0].story.id == story.id
    assert client.usage.get().generations_used == 1


def test_continuing_a_busy_story_is_retried_after_retry_after(client):
    story = client.stories.create(genre="mystery")
    first_text: list[str] = []
    streaming = client.stories.continue_(story.id, stream=True)
    first_text.append(next(streaming).text)  # the first segment is being written now

    # Meanwhile another continuation is refused (409 story-busy) and, honouring
    # Retry-After, sent again until the first is done.
    patient = Fabula(client.base_url, tokens=client.tokens, retry=RetryPolicy(max_retries=10))
    impatient = Fabula(client.base_url, tokens=client.tokens, retry=RetryPolicy(max_retries=0))
    result: dict = {}
    second = threading.Thread(target=lambda: result.update(segment=patient.stories.continue_(story.id)))
    second.start()
    with pytest.raises(StoryBusy) as busy:
        impatient.stories.continue_(story.id)
    assert busy.value.retry_after and busy.value.retry_after >= 1
    first_text.extend(getattr(event, "text", "") for event in streaming)
    second.join(timeout=60)
    patient.close()
    impatient.close()

    segments = client.stories.get(story.id).segments
    assert [s.position for s in segments] == [1, 2, 3]
    assert result["segment"].id == segments[2].id  # written after the first, not instead of it


def test_the_async_client_streams_and_raises_the_same(stack, client):
    story = client.stories.create(genre="fantasy")

    async def scenario() -> tuple[list, str]:
        async with AsyncFabula(stack.base_url, tokens=client.tokens) as fabula:
            events = [event async for event in fabula.stories.continue_(story.id, stream=True)]
            fetched, missing = await asyncio.gather(
                fabula.stories.get(story.id),
                fabula.stories.get(str(uuid.uuid4())),
                return_exceptions=True,
            )
            assert isinstance(missing, NotFound)
            return events, fetched.segments[-1].id

    events, last_id = asyncio.run(scenario())
    assert isinstance(events[0], TextDelta) and isinstance(events[-1], SegmentWritten)
    assert events[-1].segment.id == last_id


def test_a_job_is_watched_to_its_end_and_resumed_after_an_event(client):
    project = client.projects.create("Harbour tales", default_genre="mystery")
    job = client.jobs.submit(project.id, "A ferry arrives at dawn with nobody aboard.",
                             production_type="short_story", target_words=300)
    events = list(client.jobs.watch(job.id))
    assert events[0].type == "queued" and events[-1].type == "done"
    assert {"stage_started", "stage_finished"} <= {event.type for event in events}
    assert events[-1].job.status == "completed" and events[-1].progress_percentage == 100
    # Watching again from an event on: the rest, none repeated.
    middle = events[len(events) // 2].sequence
    again = list(client.jobs.watch(job.id, after=middle))
    assert [e.sequence for e in again] == [e.sequence for e in events if e.sequence > middle]


def test_the_council_streams_its_stages(client):
    conversation = client.conversations.create()
    events = list(client.conversations.ask(conversation.id, "Keeper or sea?", stream=True))
    started = [event.stage for event in events if event.event == "stage_started"]
    assert [str(stage) for stage in started] == ["1", "2", "3"]
    assert events[-1].event == "message" and events[-1].data["role"] == "assistant"
    stored = client.conversations.get(conversation.id)
    assert stored.messages[-1].content == events[-1].data["content"]


def test_tokens_are_refreshed_before_they_expire_and_after_a_401(stack):
    with Fabula(stack.base_url) as first:
        tokens = first.auth.register(new_email(), PASSWORD)
    kept: list[Tokens] = []
    # A pair whose access token has run out, as a saved login finds it the next day.
    expired = tokens.model_copy(update={"expires_at": dt.datetime.now(dt.UTC)})
    with Fabula(stack.base_url, tokens=expired, on_tokens=kept.append) as later:
        assert later.me.get().email == tokens.user.email
        assert len(kept) == 1 and kept[0].refresh_token != tokens.refresh_token
    # An access token refused by the server (not expired by the clock): one refresh, then the call.
    refused = kept[0].model_copy(update={"access_token": "not-a-token"})
    with Fabula(stack.base_url, tokens=refused, on_tokens=kept.append) as again:
        assert again.me.get().email == tokens.user.email
        assert len(kept) == 2
    # No way to refresh (the refresh token was rotated away): log in again.
    stale = refused.model_copy(update={"refresh_token": "stale"})
    with Fabula(stack.base_url, tokens=stale) as stuck, pytest.raises(AuthenticationError):
        stuck.me.get()


def test_an_api_key_is_used_as_given(client, stack):
    created = client.api_keys.create("tests", ["read"])
    with Fabula(stack.base_url, api_key=created.key) as scripted:
        assert scripted.stories.list().items == []
        assert scripted.me.get().email == client.me.get().email


def png(colour: tuple[int, int, int], size: tuple[int, int] = (320, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def test_a_photo_is_uploaded_through_the_url_it_is_given_and_gets_thumbnails(stack, client):
    async def upload() -> Photo:
        async with AsyncFabula(stack.base_url, tokens=client.tokens) as fabula:
            # The async client runs the same helper: create, send the bytes, complete, wait.
            return await fabula.photos.upload(png((30, 160, 90), (640, 480)), "image/png")

    photo = asyncio.run(upload())
    assert photo.status == "completed", photo.failure_reason
    assert (photo.content_type, photo.width, photo.height) == ("image/png", 640, 480)
    assert {r.name for r in photo.renditions} == {"original", "thumb_256", "thumb_1024"}
    thumb = photo.rendition("thumb_256")
    assert (thumb.width, thumb.height) == (256, 192)
    downloaded = httpx.get(thumb.url)  # a signed link: no credentials
    assert downloaded.status_code == 200 and downloaded.content[8:12] == b"WEBP"
    # Read again: the same renditions, each with a link signed for this read
    # (its expiry, to the second, is part of it).
    again = client.photos.get(photo.id).renditions
    assert [r.model_copy(update={"url": ""}) for r in again] == [
        r.model_copy(update={"url": ""}) for r in photo.renditions
    ]
    assert httpx.get(again[0].url).status_code == 200
    assert [p.id for p in client.photos.list().items] == [photo.id]
    client.photos.delete(photo.id)
    with pytest.raises(NotFound):
        client.photos.get(photo.id)


def test_a_tutorial_drawing_with_an_edit_gets_a_favourite_picture_story(client, tmp_path):
    english = client.tutorials.list().items
    german = client.tutorials.list(lang="de").items
    assert [t.id for t in english] == [t.id for t in german] and len(english) >= 3
    cat = next(t for t in english if t.title == "A Sitting Cat")
    assert next(t for t in german if t.id == cat.id).title == "Eine sitzende Katze"
    assert {t.id for t in client.tutorials.list(category=cat.category).items} >= {cat.id}
    steps = client.tutorials.get(cat.id, lang="de").steps
    assert steps[0].step_number == 1 and "Kreis" in steps[0].instruction

    drawn = tmp_path / "cat.png"
    drawn.write_bytes(png((200, 30, 30)))
    first = client.photos.upload(drawn)  # from a path: the type guessed from the name
    drawing = client.drawings.create(first.id, tutorial_id=cat.id)
    assert drawing.tutorial_id == cat.id and drawing.edits == []
    edited = client.drawings.add_edit(drawing.id, client.photos.upload(png((30, 160, 60)), "image/png").id)
    assert [edit.version for edit in edited.edits] == [1]
    assert [d.id for d in client.drawings.list().items] == [drawing.id]

    story = client.picture_stories.create(drawing.id, "a cat who loves the garden")
    # The edited (green) version is written about, in both languages.
    assert "green" in story.text.en and "Grün" in story.text.de and not story.is_favorite
    assert client.picture_stories.list(favorite=True).items == []
    liked = client.picture_stories.update(story.id, is_favorite=True)
    assert liked.is_favorite
    assert [s.id for s in client.picture_stories.list(favorite=True).items] == [story.id]
    assert client.picture_stories.get(story.id).title == story.title
    assert client.drawings.get(drawing.id).picture_story_count == 1
    client.picture_stories.delete(story.id)
    client.drawings.delete(drawing.id)
    assert client.drawings.list().items == []


def test_lore_revisions_branches_sharing_and_stats_of_a_story(stack, client):
    story = client.stories.create(genre="mystery", characters=["Mara"], opening_line="The fog came early.")
    entry = client.lore.create(story.id, "Mara keeps the lighthouse.", keys=["Mara"])
    assert client.lore.list(story.id).items == [entry]
    changed = client.lore.update(story.id, entry.id, priority=5)
    assert changed.priority == 5 and client.lore.get(story.id, entry.id) == changed
    context = client.stories.context(story.id)
    assert [lore.entry_id for lore in context.lore] == [entry.id] and context.budget.max_tokens > 0
    client.lore.delete(story.id, entry.id)
    assert client.lore.list(story.id).items == []

    opening = client.segments.list(story.id).items[0]
    edited = client.segments.edit(story.id, opening.id, "The fog came late.")
    assert edited.edited and edited.text == "The fog came late."
    revisions = client.segments.revisions(story.id, opening.id).items
    first = min(revisions, key=lambda revision: revision.number)
    assert client.segments.restore_revision(story.id, opening.id, first.id).text == opening.text
    alternatives = client.segments.alternatives(story.id, opening.id)
    assert alternatives.selected_id == opening.id
    [branch] = client.branches.list(story.id).items
    assert branch.is_current

    renamed = client.stories.update(story.id, title="Fog", is_favorite=True)
    assert (renamed.title, renamed.is_favorite) == ("Fog", True)
    stats = client.stories.stats()
    assert (stats.total, stats.favorites) == (1, 1)

    link = client.sharing.share(story.id)
    with Fabula(stack.base_url) as anyone:  # no account
        shared = anyone.sharing.get(link.token)
        assert shared.title == "Fog" and shared.segments[0].text == opening.text
        client.sharing.revoke(story.id)
        with pytest.raises(NotFound):
            anyone.sharing.get(link.token)


def test_account_export_and_closing(stack):
    with Fabula(stack.base_url) as fabula:
        tokens = fabula.auth.register(new_email(), PASSWORD)
        assert fabula.me.update(full_name="Ada", locale="de").locale == "de"
        exported = fabula.account.export()
        assert exported.user_id == tokens.user.id and exported.stories == []
        with zipfile.ZipFile(io.BytesIO(fabula.account.export(format="zip"))) as archive:
            assert archive.namelist()
        assert fabula.billing.subscription().plan == "free"
        fabula.account.delete(PASSWORD)
        with pytest.raises(AuthenticationError):
            fabula.auth.login(tokens.user.email, PASSWORD)
