"""The `fabula` command run as a user runs it (a subprocess of the installed
console script) against a running stack: login with tokens kept privately,
a story whose text appears while it is written, an EPUB export, a watched
job's stages, and errors as one line with their exit code."""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import sys
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from fabula_client import Fabula

pytestmark = pytest.mark.e2e

FABULA = str(Path(sys.executable).with_name("fabula"))


class Terminal:
    """Runs `fabula` with its own config folder against one stack."""

    def __init__(self, base_url: str, config: Path) -> None:
        self.env = {**os.environ, "FABULA_API_URL": base_url, "FABULA_CONFIG_DIR": str(config),
                    "COLUMNS": "120"}
        self.env.pop("FABULA_API_KEY", None)
        self.config = config

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([FABULA, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
        return result.stdout

    def json(self, *args: str):
        return json.loads(self.ok("--json", *args))

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([FABULA, *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)


@pytest.fixture
def terminal(stack, tmp_path) -> Terminal:
    return Terminal(stack.base_url, tmp_path / "config")


@dataclass
class Account:
    email: str
    password: str = "correct horse battery"


@pytest.fixture
def account(stack) -> Account:
    # Through the client: a registration refused by a busy machine (503) is retried.
    registered = Account(f"terminal-{uuid.uuid4().hex[:10]}@example.com")
    with Fabula(stack.base_url) as client:
        client.auth.register(registered.email, registered.password)
    return registered


@pytest.fixture
def logged_in(account, terminal) -> Terminal:
    terminal.ok("login", "--email", account.email, "--password", account.password)
    return terminal


def test_login_keeps_tokens_privately_and_a_story_appears_as_it_is_written(account, api, terminal):
    writer = account
    assert terminal.run("whoami").returncode == 3  # not logged in yet

    said = terminal.ok("login", "--email", writer.email, "--password", writer.password)
    assert f"as {writer.email}" in said
    saved = terminal.config / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(terminal.config.stat().st_mode) == 0o700
    assert writer.email in terminal.ok("whoami")

    story = terminal.json("stories", "new", "--genre", "mystery", "-c", "Mara")
    assert story["segments"] and story["title"]

    # The text arrives piece by piece while the command is still running.
    process = terminal.popen("stories", "continue", story["id"], "-d", "Mara finds a key")
    chunks = read_chunks(process)
    text = b"".join(chunk for _, chunk in chunks).decode()
    assert len(chunks) >= 5, chunks
    assert chunks[-1][0] - chunks[0][0] > 0.3  # written over time, not all at the end
    stored = api.http.get(f"/v1/stories/{story['id']}", headers=api_headers(terminal)).json()
    assert stored["segments"][-1]["text"].strip() in text

    # Tokens refreshed by the command are written back: the old refresh token is spent.
    before = json.loads(saved.read_text())
    entry = next(iter(before.values()))
    entry["expires_at"] = "2000-01-01T00:00:00Z"
    saved.write_text(json.dumps(before))
    assert writer.email in terminal.ok("whoami")
    after = next(iter(json.loads(saved.read_text()).values()))
    assert after["refresh_token"] != entry["refresh_token"]
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    assert "Logged out" in terminal.ok("logout")
    failed = terminal.run("stories", "list")
    assert failed.returncode == 3 and failed.stderr.startswith("error: Authentication required")


def test_a_new_story_appears_as_its_opening_is_written(logged_in, api):
    process = logged_in.popen("stories", "new", "--genre", "mystery", "-c", "Mara")
    chunks = read_chunks(process)

    text = b"".join(chunk for _, chunk in chunks).decode()
    assert len(chunks) >= 3, chunks  # the opening piece by piece, then the story
    [story] = logged_in.json("stories", "list")["items"]
    stored = api.http.get(f"/v1/stories/{story['id']}", headers=api_headers(logged_in)).json()
    opening = stored["segments"][0]["text"]
    assert text.startswith(opening)
    assert story["title"] in text and f"fabula stories continue {story['id']}" in text


def read_chunks(process: subprocess.Popen) -> list[tuple[float, bytes]]:
    """What the command writes, chunk by chunk as it comes, with the time of each."""
    chunks: list[tuple[float, bytes]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 1)
        if ready:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            chunks.append((time.monotonic(), chunk))
    assert process.wait(timeout=10) == 0, process.stderr.read()
    return chunks


def api_headers(terminal: Terminal) -> dict[str, str]:
    tokens = next(iter(json.loads((terminal.config / "credentials.json").read_text()).values()))
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def test_export_epub_list_search_and_json(logged_in, tmp_path):
    story = logged_in.json("stories", "new", "--genre", "fantasy", "--title", "The Lighthouse Keeper")
    book = tmp_path / "keeper.epub"
    said = logged_in.ok("stories", "export", story["id"], "--format", "epub", "-o", str(book))
    assert "Saved" in said
    with zipfile.ZipFile(book) as epub:
        assert epub.testzip() is None
        assert epub.read("mimetype") == b"application/epub+zip"

    listed = logged_in.json("stories", "list")
    assert [item["id"] for item in listed["items"]] == [story["id"]]
    assert story["id"] in logged_in.ok("stories", "list")
    found = logged_in.json("stories", "search", "lighthouse")
    assert [item["id"] for item in found["items"]] == [story["id"]]
    assert "The Lighthouse Keeper" in logged_in.ok("stories", "show", story["id"])
    usage = logged_in.json("usage")
    assert usage["generations_used"] == 1 and usage["plan"] == "free"
    table = logged_in.ok("usage")
    assert "generations" in table and "free" in table


def test_errors_are_one_line_with_a_meaningful_exit_code(logged_in):
    missing = logged_in.run("stories", "show", str(uuid.uuid4()))
    assert missing.returncode == 4
    [line] = missing.stderr.strip().splitlines()
    assert line.lower().rstrip(".") == "error: not found: story not found"
    assert missing.stdout == ""

    invalid = logged_in.run("stories", "new", "--genre", "x" * 500)
    assert invalid.returncode == 2 and invalid.stderr.startswith("error: ")
    assert logged_in.run("stories", "frobnicate").returncode == 2  # a usage error

    down = logged_in.run("--api-url", "http://127.0.0.1:9", "whoami")
    assert down.returncode == 6 and down.stderr.startswith("error: Cannot reach the API")


def test_jobs_watch_shows_stages_and_cost(logged_in):
    job = logged_in.json("jobs", "submit", "--premise", "A ferry arrives at dawn with nobody aboard.",
                         "--target-words", "300")
    assert job["status"] == "queued"
    watched = logged_in.run("jobs", "watch", job["id"])
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    for stage in job["stages"]:
        assert f"stage {stage} started" in lines and f"stage {stage} finished" in lines
    assert lines.index(f"stage {job['stages'][0]} started") < lines.index(
        f"stage {job['stages'][-1]} finished")
    assert "100%" in watched.stdout and "$" in watched.stdout
    assert f"Job {job['id']} done" in watched.stdout
    # As JSON Lines, one event a line, to the terminal one.
    events = [json.loads(line) for line in logged_in.ok("--json", "jobs", "watch", job["id"]).splitlines()]
    assert events[0]["type"] == "queued" and events[-1]["type"] == "done"


def test_council_ask_shows_each_stage(logged_in):
    asked = logged_in.run("council", "ask", "Who should tell the story of the lighthouse?")
    assert asked.returncode == 0, asked.stderr
    out = asked.stdout
    first, second, third = (out.index(f"Stage {n}:") for n in (1, 2, 3))
    assert first < out.index("answered") < second < out.index("ranked") < third
    assert "chairman" in out[third:]


def test_import_stories_wraps_the_importer(account, stack, terminal):
    writer = account
    samples = Path(__file__).resolve().parents[3] / "examples" / "saved_stories"
    # An operator's command: it reaches the services as `make run` starts them.
    imported = subprocess.run(
        [FABULA, "import", "stories", "--email", writer.email, "--dir", str(samples)],
        env={**stack.env, "FABULA_CONFIG_DIR": str(terminal.config)},
        capture_output=True, text=True, timeout=120,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "failed 0" in imported.stdout
    terminal.ok("login", "--email", writer.email, "--password", writer.password)
    listed = terminal.json("stories", "list")["items"]
    assert len(listed) == len(list(samples.glob("*.json")))
    unknown = subprocess.run(
        [FABULA, "import", "stories", "--email", "nobody@example.com", "--dir", str(samples)],
        env=stack.env, capture_output=True, text=True, timeout=120,
    )
    assert unknown.returncode == 2 and "nobody@example.com" in unknown.stderr
