"""Reading Server-Sent Events in tests."""

from __future__ import annotations

import json


def sse_fields(text: str) -> list[dict[str, str]]:
    """The fields of each event (`event`, `data`, `retry`); asserts the framing."""
    text = text.replace("\r\n", "\n")
    assert text.endswith("\n\n")
    blocks = []
    for block in text.removesuffix("\n\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        assert {"event", "data"} <= set(fields) <= {"event", "data", "retry"}, block
        blocks.append(fields)
    return blocks


def sse_events(text: str) -> list[tuple[str, dict]]:
    """(event, data) of each event."""
    return [(fields["event"], json.loads(fields["data"])) for fields in sse_fields(text)]
