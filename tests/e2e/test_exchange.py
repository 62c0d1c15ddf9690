"""Export and import end to end: a story written through the API comes back
as Markdown, text and a valid EPUB; `make import-stories`' program imports a
folder of the AI Story Generator's saved stories once, however often it runs."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from ebooklib import epub

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "saved_stories"
XHTML = "{http://www.w3.org/1999/xhtml}"


def run_importer(stack, email: str, folder: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fabula_stories.exchange.importer", "--email", email,
         "--dir", str(folder)],
        env={**stack.env, **env},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_written_story_exports_as_markdown_text_and_epub(api, problem, tmp_path):
    writer = api.register()
    created = api.create_story(writer, title="The Ferry & the <Fog>", characters=["Mara"])
    assert created.status_code == 201, created.text
    story = created.json()
    continued = api.http.post(f"/v1/stories/{story['id']}/continue", headers=writer.headers)
    assert continued.status_code == 201, continued.text
    texts = [story["segments"][0]["text"], continued.json()["text"]]
    url = f"/v1/stories/{story['id']}/export"

    markdown = api.http.get(url, headers=writer.headers)
    assert markdown.status_code == 200, markdown.text
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    assert 'filename="the-ferry-the-fog.md"' in markdown.headers["content-disposition"]
    assert markdown.text.startswith("# The Ferry & the \\<Fog\\>\n")
    assert "Author: Ada Writer" in markdown.text and writer.email not in markdown.text

    text = api.http.get(url, params={"format": "txt"}, headers=writer.headers)
    assert text.status_code == 200, text.text
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    body = text.text
    assert body.index(texts[0].split("\n")[0]) < body.index("* * *")
    assert body.index("* * *") < body.index(texts[1].split("\n")[0])

    book_response = api.http.get(url, params={"format": "epub"}, headers=writer.headers)
    assert book_response.status_code == 200, book_response.text
    assert book_response.headers["content-type"] == "application/epub+zip"
    data = book_response.content
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.infolist()[0].filename == "mimetype"
    assert archive.infolist()[0].compress_type == zipfile.ZIP_STORED
    path = tmp_path / "story.epub"
    path.write_bytes(data)
    book = epub.read_epub(str(path))
    assert book.get_metadata("DC", "title")[0][0] == "The Ferry & the <Fog>"
    assert book.get_metadata("DC", "creator")[0][0] == "Ada Writer"
    assert book.get_metadata("DC", "identifier")[0][0] == f"urn:uuid:{story['id']}"
    chapters = [book.get_item_with_id(item_id) for item_id, _ in book.spine]
    assert len(chapters) == 2
    for chapter, segment_text in zip(chapters, texts, strict=True):
        root = ElementTree.fromstring(archive.read(f"EPUB/{chapter.get_name()}"))
        paragraphs = " ".join("".join(p.itertext()) for p in root.iter(f"{XHTML}p"))
        assert paragraphs.split() == segment_text.split()

    problem(api.http.get(url, params={"format": "pdf"}, headers=writer.headers), 422)
    stranger = api.register()
    problem(api.http.get(url, headers=stranger.headers), 404)


def test_importing_a_folder_twice_imports_each_story_once(api, stack, tmp_path):
    writer = api.register()
    folder = tmp_path / "saved_stories"
    folder.mkdir()
    for name in ("lighthouse-keeper.json", "clockwork-orchard.json"):
        shutil.copy(SAMPLES / name, folder / name)
    (folder / "broken.json").write_text('{"id": "x", "title": "Half a story", "segm')

    first = run_importer(stack, writer.email.upper(), folder)

    assert first.returncode == 1, first.stdout + first.stderr
    assert "imported 2, skipped 0 (already imported), failed 1" in first.stdout
    assert "failed broken.json: not valid JSON" in first.stdout
    listed = api.http.get("/v1/stories", headers=writer.headers).json()["items"]
    assert sorted(item["title"] for item in listed) == [
        "The Clockwork Orchard", "The Lighthouse Keeper's Daughter"
    ]
    lighthouse = next(item for item in listed if item["title"].startswith("The Lighthouse"))
    assert lighthouse["created_at"].startswith("2024-03-02T21:14:05")
    assert lighthouse["is_complete"] and lighthouse["segment_count"] == 3

    again = run_importer(stack, writer.email, folder)

    assert again.returncode == 1, again.stdout + again.stderr
    assert "imported 0, skipped 2 (already imported), failed 1" in again.stdout
    assert len(api.http.get("/v1/stories", headers=writer.headers).json()["items"]) == 2


def test_the_importer_stops_for_an_unknown_user_or_unreachable_services(api, stack, tmp_path):
    writer = api.register()
    unknown = run_importer(stack, "nobody-at-all@example.com", SAMPLES)
    assert unknown.returncode == 2
    assert "no user has the email nobody-at-all@example.com" in unknown.stderr

    users_down = run_importer(stack, writer.email, SAMPLES, USERS_ADDR="127.0.0.1:9")
    assert users_down.returncode == 2
    assert "the users service at 127.0.0.1:9 cannot be reached" in users_down.stderr

    stories_down = run_importer(stack, writer.email, SAMPLES, STORIES_ADDR="127.0.0.1:9")
    assert stories_down.returncode == 2
    assert "the stories service at 127.0.0.1:9 cannot be reached" in stories_down.stderr
    assert "imported 0, skipped 0 (already imported), failed 0" in stories_down.stdout

    missing = run_importer(stack, "ada@example.com", tmp_path / "nowhere")
    assert missing.returncode == 2
