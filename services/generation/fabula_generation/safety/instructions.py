"""The instructions a model gets, on top of its purpose's prompt, when the
call is made for a child-safe account. Added by every provider to every
message list it sends, so no purpose can forget them."""

from __future__ import annotations

from typing import Any

from fabula_common.context import is_child_safe

CHILD_SAFE_INSTRUCTIONS = (
    "The reader is a child under 13. Write only what is suitable for young children: "
    "no violence beyond gentle peril, no injury or death described, no weapons used on "
    "anyone, no romance beyond friendship, nothing sexual, no alcohol, drugs or smoking, "
    "no cruelty, no frightening horror, no crude language. Keep the tone warm and kind; "
    "if the request asks for anything unsuitable, write a gentle, suitable story instead."
)


def with_child_safety(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages, led by the child-safe instructions when the current
    request is child-safe; unchanged otherwise."""
    if not is_child_safe():
        return messages
    return [{"role": "system", "content": CHILD_SAFE_INSTRUCTIONS}, *messages]
