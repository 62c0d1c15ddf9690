"""The prompts a language model gets: built here from each purpose's inputs,
so callers send facts (about a story) and never prompt text."""

from __future__ import annotations

from dataclasses import dataclass

from fabula_generation.generations.domain import GenerationRequest, Purpose

SYSTEM_PROMPT = (
    "You are Fabula, a co-writing assistant. You and a writer build a story together, "
    "one segment at a time. Write the segment you are asked for as vivid, coherent prose "
    "in the story's genre, consistent with its characters and with everything that has "
    "happened so far. Follow the writer's direction when there is one. Write about 120 to "
    "220 words. Answer with the story text only: no headings, notes, or commentary."
)

TITLE_INSTRUCTION = (
    'Begin your answer with one line of the form "Title: <a short, evocative title for the '
    'story>", then a blank line, then the segment.'
)

_TASKS = {
    Purpose.story_opening: "Write the opening segment of the story.",
    Purpose.story_continuation: "Continue the story with its next segment.",
    Purpose.story_ending: (
        "Write the final segment: bring the story to a satisfying ending that resolves its "
        "central conflict. This is the last segment; do not leave it open."
    ),
}


@dataclass(frozen=True)
class ChatPrompt:
    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]

    @property
    def text(self) -> str:
        return f"{self.system}\n{self.user}"


def approximate_tokens(text: str) -> int:
    """About four characters a token: ceil(len / 4), as stories counts its
    context budget (see docs/architecture.md)."""
    return (len(text) + 3) // 4


def build_prompt(request: GenerationRequest) -> ChatPrompt:
    if request.prompt is not None:
        return ChatPrompt(system=request.prompt.system, user=request.prompt.user)
    story = request.story
    lines: list[str] = []
    if story.genre:
        lines.append(f"Genre: {story.genre}")
    if story.title:
        lines.append(f"Story title: {story.title}")
    if story.characters:
        lines.append("Characters:")
        lines += [f"- {character}" for character in story.characters]
    if story.opening_line:
        lines.append(
            f"Opening line (start the story with it): {story.opening_line}"
            if request.purpose is Purpose.story_opening
            else f"The story opened with: {story.opening_line}"
        )
    if story.memory.strip():
        lines.append("")
        lines.append("Memory (keep this in mind throughout):")
        lines.append(story.memory.strip())
    lore = [entry.strip() for entry in story.lore if entry.strip()]
    if lore:
        lines.append("")
        lines.append("World information:")
        # Continuation lines are indented so an entry stays one list item.
        lines += ["- " + entry.replace("\n", "\n  ") for entry in lore]
    if story.previous_segments:
        lines.append("")
        lines.append("The story so far:")
        lines.append("\n\n".join(story.previous_segments))
    if story.authors_note.strip():
        # Near the end, where it weighs most on what comes next.
        lines.append("")
        lines.append(f"[Author's note: {story.authors_note.strip()}]")
    lines.append("")
    lines.append(_TASKS[request.purpose])
    if request.direction.strip():
        lines.append("The writer's direction for this segment:")
        lines.append(request.direction.strip())
    if request.want_title:
        lines.append(TITLE_INSTRUCTION)
    return ChatPrompt(system=SYSTEM_PROMPT, user="\n".join(lines))
