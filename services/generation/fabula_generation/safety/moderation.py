"""Moderation checks of what a child-safe account sends and gets.

A provider that offers a moderation endpoint checks with it (Mistral's
`classifiers.moderate` through its SDK); the offline generator and the
OpenAI-compatible provider (Ollama, vLLM and llama.cpp have no such endpoint)
use the built-in word list: a small, deterministic check that is NOT a
classifier, only a clearly-labelled safety net that lets the child-safe flow
work without a model. A refusal is `ContentBlocked` naming the part, never a
silent change of the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from fabula_common.errors import ContentBlocked

if TYPE_CHECKING:
    from fabula_generation.generations.domain import GenerationRequest

WORD_LIST_CHECKER = "offline-wordlist"

# English and German stems; matched at the start of a word, case-insensitively.
_WORD_LIST: dict[str, tuple[str, ...]] = {
    "violence": (
        "kill", "murder", "blood", "gore", "stab", "shoot", "gun", "weapon", "torture",
        "behead", "massacre", "töt", "mord", "ermord", "blut", "erschie", "waffe", "folter",
    ),
    "sexual": ("sex", "nude", "naked", "porn", "nackt"),
    "drugs_alcohol": ("drug", "cocaine", "heroin", "vodka", "whisky", "drog", "kokain"),
    "self_harm": ("suicide", "selbstmord", "suizid"),
    "hate": ("hate speech", "slur"),
}
_PATTERNS = {
    category: re.compile(r"\b(?:" + "|".join(map(re.escape, stems)) + r")", re.IGNORECASE)
    for category, stems in _WORD_LIST.items()
}


@dataclass(frozen=True)
class Verdict:
    """What a check said of one text."""

    checker: str
    flagged: bool
    categories: tuple[str, ...] = field(default=())


class Moderator(Protocol):
    name: str

    async def check(self, texts: list[str]) -> list[Verdict]:
        """One verdict per text, in order. UpstreamError when the check
        itself failed (then nothing is let through unchecked)."""
        ...


class WordListModerator:
    """The built-in check: flags a text containing a word of a small list."""

    name = WORD_LIST_CHECKER

    async def check(self, texts: list[str]) -> list[Verdict]:
        return [self.verdict(text) for text in texts]

    def verdict(self, text: str) -> Verdict:
        categories = tuple(
            category for category, pattern in _PATTERNS.items() if pattern.search(text)
        )
        return Verdict(self.name, bool(categories), categories)


def written_by_the_user(request: GenerationRequest) -> dict[str, str]:
    """The texts of a story generation its user wrote (the model's earlier
    segments were checked as they were written), by part name."""
    story = request.story
    return {
        "direction": request.direction,
        "opening_line": story.opening_line,
        "story_title": story.title,
        "story_characters": ", ".join(story.characters),
        "memory": story.memory,
        "authors_note": story.authors_note,
    }


async def require_suitable(moderator: Moderator, parts: dict[str, str]) -> list[Verdict]:
    """Check every named text (parts with no text are skipped); ContentBlocked
    naming the first flagged part. Returns the verdicts, to be stored."""
    named = [(part, text) for part, text in parts.items() if text.strip()]
    if not named:
        return []
    verdicts = await moderator.check([text for _, text in named])
    for (part, _), verdict in zip(named, verdicts, strict=True):
        if verdict.flagged:
            raise ContentBlocked(part, verdict.checker, list(verdict.categories))
    return verdicts


class ProviderModerator:
    """The model provider's own moderation endpoint (Mistral's)."""

    def __init__(self, provider: ModeratingProvider) -> None:
        self.provider = provider
        self.name = provider.name

    async def check(self, texts: list[str]) -> list[Verdict]:
        answers = await self.provider.moderate(texts)
        verdicts = []
        for categories in answers:
            flagged = tuple(sorted(name for name, hit in categories.items() if hit))
            verdicts.append(Verdict(self.name, bool(flagged), flagged))
        return verdicts


class ModeratingProvider(Protocol):
    name: str

    async def moderate(self, texts: list[str]) -> list[dict[str, bool]]: ...


def moderator_for(provider: object) -> Moderator:
    """The provider's moderation when it offers one, else the word list."""
    if callable(getattr(provider, "moderate", None)):
        return ProviderModerator(provider)  # type: ignore[arg-type]
    return WordListModerator()
