"""A job's pipeline: its named stages, what each stage asks the model (the
prompt, its room to answer, the offline generator's text), what it may cost,
and how the checkpoints assemble into the narrative.

New narrative: outline -> draft-1..N -> revise -> measure.
Revision: plan -> rewrite-1..N (locked sections copied, no call) -> measure.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass
from decimal import Decimal

from fabula_generation.generations.domain import (
    ComposedPrompt,
    GenerationRequest,
    Purpose,
    StoryInputs,
    Subject,
)
from fabula_generation.generations.pricing import PriceTable
from fabula_generation.generations.text import count_tokens
from fabula_generation.jobs import prompts
from fabula_generation.jobs.domain import Brief, Revision
from fabula_generation.providers.offline import VOICES, OfflineStoryteller, voice_key_for

MEASURE = "measure"
# A section is drafted in one call: about this many words at most.
SECTION_WORDS = 1500
# Completion tokens a word takes (tokens are words and punctuation; a model's
# tokenizer counts more): the room a stage's answer gets.
TOKENS_PER_WORD = 1.6
# Room for what a prompt quotes of earlier stages, and a margin for a
# tokenizer counting more than our local count: the estimate is an upper bound.
PROMPT_MARGIN = Decimal("1.5")
PREVIOUS_TAIL_CHARS = 1200
_TITLE = re.compile(r"^[\s#*_]*title[\s*_]*:[\s*_]*(?P<title>.*?)[\s*_]*$", re.IGNORECASE)
_SECTION_LINE = re.compile(r"^\s*(\d+)[.)]\s*(?P<rest>.+)$")
_HEADING = re.compile(r"^## +(?P<heading>.+)$", re.MULTILINE)


def section_count(target_words: int) -> int:
    return max(1, math.ceil(target_words / SECTION_WORDS))


def new_stages(target_words: int) -> list[str]:
    sections = section_count(target_words)
    return ["outline", *(f"draft-{i}" for i in range(1, sections + 1)), "revise", MEASURE]


def revision_stages(sections: int) -> list[str]:
    return ["plan", *(f"rewrite-{i}" for i in range(1, sections + 1)), MEASURE]


@dataclass(frozen=True)
class Section:
    heading: str
    body: str


def split_sections(text: str, target_words: int) -> list[Section]:
    """The parent's sections: at "## " headings, or without any into the
    pipeline's sections (whole paragraphs, about SECTION_WORDS each)."""
    headings = list(_HEADING.finditer(text))
    if headings:
        sections = []
        preface = text[: headings[0].start()].strip()
        for i, match in enumerate(headings):
            end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
            body = text[match.end() : end].strip()
            if i == 0 and preface:
                body = f"{preface}\n\n{body}"
            sections.append(Section(match["heading"].strip(), body))
        return sections
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    count = min(section_count(max(target_words, len(text.split()))), max(len(paragraphs), 1))
    per = math.ceil(len(paragraphs) / count) if paragraphs else 1
    return [
        Section("", "\n\n".join(paragraphs[i : i + per]))
        for i in range(0, max(len(paragraphs), 1), per)
    ] or [Section("", "")]


def assemble(sections: list[Section]) -> str:
    if len(sections) == 1 and not sections[0].heading:
        return sections[0].body
    return "\n\n".join(
        f"## {s.heading}\n\n{s.body}" if s.heading else s.body for s in sections
    ).strip()


def split_title(output: str) -> tuple[str, str]:
    """(title, the rest) of an answer that may start with a "Title:" line."""
    first, _, rest = output.strip().partition("\n")
    match = _TITLE.match(first)
    if match:
        return match["title"].strip().strip("\"'“”"), rest.strip()
    return "", output.strip()


def outline_headings(outline: str, sections: int) -> list[str]:
    headings = []
    for line in outline.splitlines():
        match = _SECTION_LINE.match(line)
        if match:
            heading = re.split(r":| — | - ", match["rest"], maxsplit=1)[0].strip(" *_#")
            headings.append(heading[:80] or f"Part {len(headings) + 1}")
    headings = headings[:sections]
    headings += [f"Part {i}" for i in range(len(headings) + 1, sections + 1)]
    return headings


@dataclass(frozen=True)
class JobPlan:
    """Everything the stages of one job depend on."""

    job_id: str
    user_id: str
    brief: Brief
    stages: tuple[str, ...]
    revision: Revision | None = None

    @property
    def sections(self) -> int:
        return len(self.stages) - (2 if self.revision is not None else 3)

    def parent_sections(self) -> list[Section]:
        assert self.revision is not None
        return split_sections(self.revision.parent_text, self.brief.target_words)

    def section_words(self) -> int:
        return max(50, round(self.brief.target_words / self.sections))

    # The stages' model calls ------------------------------------------------

    def prompt_for(self, stage: str, outputs: dict[str, str]) -> ComposedPrompt | None:
        """What `stage` asks the model, given earlier stages' outputs; None
        for a stage without a model call (measure, a locked section)."""
        brief, n = self.brief, self.sections
        if stage == MEASURE:
            return None
        if stage == "outline":
            return ComposedPrompt(
                prompts.SYSTEM_PROMPT,
                prompts.outline_prompt(brief, n),
                max_tokens=80 * n + 100,
                offline_text=self._offline_outline(),
            )
        if stage.startswith("draft-"):
            index = int(stage.removeprefix("draft-"))
            outline = outputs.get("outline", "")
            previous = outputs.get(f"draft-{index - 1}", "")[-PREVIOUS_TAIL_CHARS:]
            words = self.section_words()
            return ComposedPrompt(
                prompts.SYSTEM_PROMPT,
                prompts.draft_prompt(brief, outline, index, n, words, previous),
                max_tokens=int(words * TOKENS_PER_WORD) + 50,
                offline_text=self._offline_prose(f"draft-{index}", words, index == n),
            )
        if stage == "revise":
            title, _ = split_title(outputs.get("outline", ""))
            ending = "\n\n".join(_paragraphs(outputs.get(f"draft-{n}", ""))[-2:])
            return ComposedPrompt(
                prompts.SYSTEM_PROMPT,
                prompts.revise_prompt(brief, title, ending[-PREVIOUS_TAIL_CHARS:]),
                max_tokens=400,
                offline_text=self._offline_revise(title, ending),
            )
        assert self.revision is not None
        sections = self.parent_sections()
        if stage == "plan":
            headings = [s.heading or f"Section {i + 1}" for i, s in enumerate(sections)]
            return ComposedPrompt(
                prompts.SYSTEM_PROMPT,
                prompts.plan_prompt(self.revision, headings),
                max_tokens=60 * n + 100,
                offline_text=self._offline_plan(headings),
            )
        index = int(stage.removeprefix("rewrite-"))
        if index - 1 in self.revision.locked_sections or index > len(sections):
            return None
        section = sections[index - 1]
        return ComposedPrompt(
            prompts.SYSTEM_PROMPT,
            prompts.rewrite_prompt(
                brief, self.revision, outputs.get("plan", ""), index, n, section.body
            ),
            max_tokens=int(len(section.body.split()) * TOKENS_PER_WORD * 1.3) + 50,
            offline_text=self._offline_rewrite(section.body),
        )

    def locked_output(self, stage: str) -> str | None:
        """A locked section's text, copied verbatim (no call)."""
        if self.revision is None or not stage.startswith("rewrite-"):
            return None
        index = int(stage.removeprefix("rewrite-"))
        sections = self.parent_sections()
        if index - 1 in self.revision.locked_sections and index <= len(sections):
            return sections[index - 1].body
        return None

    def request_for(self, stage: str, prompt: ComposedPrompt) -> GenerationRequest:
        return GenerationRequest(
            user_id=self.user_id,
            purpose=Purpose.job_stage,
            subject=Subject(kind="job", id=self.job_id),
            story=StoryInputs(genre=self.brief.genre),
            prompt=prompt,
        )

    # Money -------------------------------------------------------------------

    def stage_estimate(self, stage: str, prices: PriceTable, model: str) -> Decimal:
        """An upper bound of the stage's cost, known before earlier stages ran:
        the prompt without their outputs plus room for what it quotes of them,
        with a margin; the answer at its full room."""
        prompt = self.prompt_for(stage, {})
        if prompt is None:
            return Decimal(0)
        quoted = 0
        if stage.startswith("draft-"):
            quoted = 80 * self.sections + 100 + PREVIOUS_TAIL_CHARS // 3
        elif stage == "revise":
            quoted = PREVIOUS_TAIL_CHARS // 3
        elif stage.startswith("rewrite-"):
            quoted = 60 * self.sections + 100
        prompt_tokens = count_tokens(f"{prompt.system}\n{prompt.user}") + quoted
        bound = int(Decimal(prompt_tokens) * PROMPT_MARGIN)
        return prices.cost(model, bound, prompt.max_tokens)

    def calls(self) -> int:
        """Model calls the pipeline plans (estimated_generations)."""
        return sum(
            1 for stage in self.stages if stage != MEASURE and self.locked_output(stage) is None
        )

    # The narrative -------------------------------------------------------------

    def narrative(self, outputs: dict[str, str]) -> tuple[str, str]:
        """(title, text) from the completed stages' checkpoints."""
        n = self.sections
        if self.revision is not None:
            parents = self.parent_sections()
            sections = [
                Section(
                    parents[i].heading if i < len(parents) else "",
                    outputs.get(f"rewrite-{i + 1}", "").strip(),
                )
                for i in range(n)
            ]
            return self.revision.parent_title, assemble(sections)
        title, _ = split_title(outputs.get("outline", ""))
        headings = outline_headings(outputs.get("outline", ""), n)
        drafts = [outputs.get(f"draft-{i}", "").strip() for i in range(1, n + 1)]
        final_title, closing = split_title(outputs.get("revise", ""))
        if closing and drafts[-1]:
            paragraphs = _paragraphs(drafts[-1])
            drafts[-1] = "\n\n".join([*paragraphs[:-1], closing])
        sections = [
            Section(headings[i] if n > 1 else "", drafts[i]) for i in range(n)
        ]
        return final_title or title or "Untitled", assemble(sections)

    # The offline generator's text ---------------------------------------------

    def _rng(self, salt: str) -> random.Random:
        key = f"{self.job_id}\x1f{salt}".encode()
        return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))

    def _voice(self):
        return VOICES[voice_key_for(self.brief.genre)]

    def _title(self, rng: random.Random) -> str:
        voice = self._voice()
        return f"The {rng.choice(voice.title_adjectives)} {rng.choice(voice.title_nouns)}"

    def _offline_outline(self) -> str:
        rng = self._rng("outline")
        voice = self._voice()
        lines = [f"Title: {self._title(rng)}", ""]
        for i in range(1, self.sections + 1):
            heading = f"{rng.choice(voice.title_adjectives)} {rng.choice(voice.title_nouns)}"
            place, threat = rng.choice(voice.places), rng.choice(voice.threats)
            lines.append(f"{i}. {heading}: the story moves to {place}, and {threat} draws near.")
        return "\n".join(lines)

    def _offline_prose(self, salt: str, words: int, ending: bool) -> str:
        """About `words` words of the offline storyteller's prose."""
        paragraphs: list[str] = []
        count, turn = 0, 0
        while count < words:
            if ending and count > words - 250:
                purpose = Purpose.story_ending
            elif turn == 0 and salt == "draft-1":
                purpose = Purpose.story_opening
            else:
                purpose = Purpose.story_continuation
            request = GenerationRequest(
                user_id=self.user_id,
                purpose=purpose,
                subject=Subject("job", self.job_id),
                story=StoryInputs(
                    genre=self.brief.genre,
                    characters=self.brief.characters,
                    previous_segments=("",) * turn,
                ),
                direction=f"{salt} {self.brief.premise}"[:200],
            )
            segment = OfflineStoryteller(request).compose()
            paragraphs.append(segment)
            count += len(segment.split())
            turn += 1
            if purpose is Purpose.story_ending:
                break
        return "\n\n".join(paragraphs)

    def _offline_revise(self, title: str, ending: str) -> str:
        rng = self._rng("revise")
        last = _paragraphs(ending)[-1] if ending.strip() else "And so the story ended."
        return f"Title: {title or self._title(rng)}\n\n{last}"

    def _offline_plan(self, headings: list[str]) -> str:
        assert self.revision is not None
        locked = set(self.revision.locked_sections)
        instructions = " ".join(self.revision.instructions.split())[:300]
        return "\n".join(
            f"{i + 1}. {heading}: rework it so that: {instructions}"
            for i, heading in enumerate(headings)
            if i not in locked
        )

    def _offline_rewrite(self, body: str) -> str:
        assert self.revision is not None
        instructions = " ".join(self.revision.instructions.split()[:40])
        return f"(Revised as the writer asked: {instructions}.)\n\n{body}"


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
