"""The prompts a language model gets for each stage of a job, built from the
brief and the checkpoints of earlier stages (callers send facts, never prompt
text)."""

from __future__ import annotations

from fabula_generation.jobs.domain import Brief, Revision

SYSTEM_PROMPT = (
    "You are Fabula, a novelist's assistant writing long-form fiction in stages. "
    "Write vivid, coherent prose in the requested genre and tone, consistent with the plan, "
    "the characters and the world notes. Follow the requested format exactly and write "
    "nothing else: no notes, no commentary."
)


def _brief_lines(brief: Brief) -> list[str]:
    lines = [f"Form: {brief.production_type.replace('_', ' ')} of about {brief.target_words} words"]
    if brief.locale and brief.locale != "en":
        lines.append(f"Write in the language with the code: {brief.locale}")
    if brief.genre:
        lines.append(f"Genre: {brief.genre}")
    if brief.premise:
        lines.append(f"Premise: {brief.premise}")
    if brief.characters:
        lines.append("Characters:")
        lines += [f"- {character}" for character in brief.characters]
    if brief.setting:
        lines.append(f"Setting: {brief.setting}")
    if brief.tone:
        lines.append(f"Tone: {brief.tone}")
    if brief.world_notes.strip():
        lines.append("World notes:")
        lines.append(brief.world_notes.strip())
    return lines


def outline_prompt(brief: Brief, sections: int) -> str:
    return "\n".join(
        [
            *_brief_lines(brief),
            "",
            f"Plan the story in exactly {sections} sections.",
            'Answer with one line "Title: <the story\'s title>", a blank line, then one line '
            'per section: "<number>. <section heading>: <two sentences of what happens>".',
        ]
    )


def draft_prompt(
    brief: Brief, outline: str, index: int, sections: int, words: int, previous_tail: str
) -> str:
    lines = [*_brief_lines(brief), "", "The plan:", outline.strip(), ""]
    if previous_tail:
        lines += ["The previous section ended:", previous_tail, ""]
    lines.append(
        f"Write section {index} of {sections} as about {words} words of prose, following the "
        "plan. Do not repeat the heading; answer with the prose only."
        + (" This is the last section: bring the story to its end." if index == sections else "")
    )
    return "\n".join(lines)


def revise_prompt(brief: Brief, title: str, ending: str) -> str:
    return "\n".join(
        [
            *_brief_lines(brief),
            "",
            f"Working title: {title}",
            "The story's last paragraphs:",
            ending,
            "",
            'Polish the ending. Answer with one line "Title: <the final title>", a blank line, '
            "then the final paragraph rewritten so that it closes the story well.",
        ]
    )


def plan_prompt(revision: Revision, headings: list[str]) -> str:
    locked = set(revision.locked_sections)
    lines = [
        f"A writer revises the story \"{revision.parent_title}\".",
        f"What the writer wants changed: {revision.instructions}",
        "",
        "Its sections:",
    ]
    for index, heading in enumerate(headings):
        keep = " (locked: kept verbatim)" if index in locked else ""
        lines.append(f"{index + 1}. {heading}{keep}")
    lines += [
        "",
        "Answer with one line per section that is not locked: "
        '"<number>. <what to change in it>".',
    ]
    return "\n".join(lines)


def rewrite_prompt(
    brief: Brief, revision: Revision, plan: str, index: int, sections: int, text: str
) -> str:
    return "\n".join(
        [
            *_brief_lines(brief),
            "",
            f"What the writer wants changed: {revision.instructions}",
            "The revision plan:",
            plan.strip(),
            "",
            f"Section {index} of {sections} as it is now:",
            text,
            "",
            "Rewrite this section following the plan and the writer's wishes, keeping about "
            "its length. Answer with the prose only.",
        ]
    )
