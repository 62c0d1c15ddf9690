"""Token counting and the title line a model writes before the segment."""

from __future__ import annotations

import re

# Words (with inner apostrophes or hyphens) and single punctuation marks.
_TOKEN = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")
# A first line like "Title: The Long Night", "**Title:** ..." or "# Title: ...".
_TITLE_LINE = re.compile(r"^[\s#*_]*title[\s*_]*:[\s*_]*(?P<title>.*?)[\s*_]*$", re.IGNORECASE)
_TITLE_MARKUP = re.compile(r"^[\s#*_]+")
# A title line longer than this is not a title: stop waiting for its end.
_MAX_TITLE_LINE = 300


def count_tokens(text: str) -> int:
    """Words plus punctuation marks: the offline provider's exact measure, and
    an estimate for a model whose provider reported no usage."""
    return len(_TOKEN.findall(text))


def clean_title(raw: str) -> str:
    return raw.strip().strip("\"'“”‘’").strip()


class TitleSplitter:
    """Separates a leading "Title: ..." line from streamed model output.

    Output is held back only until it is clear whether it starts with a title
    line; everything after is passed through as it arrives.
    """

    def __init__(self, expect_title: bool) -> None:
        self._deciding = expect_title
        self._buffer = ""
        self._strip_leading_space = False
        self.title = ""

    def feed(self, chunk: str) -> str:
        """Take raw output; return the part of it that belongs to the segment."""
        if not self._deciding:
            return self._pass(chunk)
        self._buffer += chunk
        head = _TITLE_MARKUP.sub("", self._buffer).lower()
        if head and not (head.startswith("title") or "title".startswith(head)):
            return self._release()
        newline = self._buffer.find("\n", len(self._buffer) - len(self._buffer.lstrip()))
        if newline == -1:
            if len(self._buffer) > _MAX_TITLE_LINE:
                return self._release()
            return ""
        match = _TITLE_LINE.match(self._buffer[:newline])
        if match is None:
            return self._release()
        self.title = clean_title(match.group("title"))
        rest = self._buffer[newline + 1 :]
        self._buffer = ""
        self._deciding = False
        self._strip_leading_space = True
        return self._pass(rest)

    def finish(self) -> str:
        """End of output: whatever is still held back."""
        if not self._deciding:
            return ""
        match = _TITLE_LINE.match(self._buffer)
        if match is not None and "\n" not in self._buffer.strip():
            # Output that is nothing but a title line.
            self.title = clean_title(match.group("title"))
            self._buffer = ""
            self._deciding = False
            return ""
        return self._release()

    def _release(self) -> str:
        self._deciding = False
        text, self._buffer = self._buffer, ""
        return text

    def _pass(self, text: str) -> str:
        if self._strip_leading_space:
            text = text.lstrip()
            if not text:
                return ""
            self._strip_leading_space = False
        return text
