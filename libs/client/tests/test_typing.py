"""What a user's type checker sees of the client (mypy, on code written as a
user writes it): answers are their models, streams iterators of their events,
the async client's answers awaitables and its streams async iterators."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

USER_CODE = '''
from fabula_client import AsyncFabula, Fabula


def sync_use(client: Fabula) -> None:
    reveal_type(client.stories.create("mystery"))
    reveal_type(client.stories.continue_("id", stream=True))
    reveal_type(client.conversations.ask("c", "q"))
    reveal_type(client.jobs.watch("j"))


async def async_use(client: AsyncFabula) -> None:
    reveal_type(await client.stories.get("id"))
    async for event in client.stories.create("mystery", stream=True):
        reveal_type(event)
    reveal_type(await client.stories.regenerate("id", "segment"))
    async for council_event in client.conversations.follow_up("c", ["an answer"], stream=True):
        reveal_type(council_event)
'''

EXPECTED = [
    "fabula_client.models.Story",
    "typing.Iterator[fabula_client.models.TextDelta | fabula_client.models.SegmentWritten]",
    "fabula_client.models.Message | fabula_client.models.ClarifyingQuestions",
    "typing.Iterator[fabula_client.models.JobEvent]",
    "fabula_client.models.Story",
    "fabula_client.models.TextDelta | fabula_client.models.StoryWritten",
    "fabula_client.models.Segment",
    "fabula_client.models.CouncilEvent",
]


def test_a_type_checker_sees_the_models_and_streams(tmp_path: Path):
    code = tmp_path / "user_code.py"
    code.write_text(USER_CODE)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), str(code)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    revealed = re.findall(r'Revealed type is "(.+)"', checked.stdout)
    assert revealed == EXPECTED, checked.stdout + checked.stderr
    assert "error:" not in checked.stdout, checked.stdout
