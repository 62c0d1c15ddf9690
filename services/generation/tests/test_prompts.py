"""The prompt of the story purposes: where memory, lore and the author's note go."""

from __future__ import annotations

from fabula_generation.generations.domain import (
    GenerationRequest,
    Purpose,
    StoryInputs,
    Subject,
)
from fabula_generation.generations.prompts import approximate_tokens, build_prompt
from fabula_generation.providers import OfflineProvider


def request(**story_fields) -> GenerationRequest:
    story = {
        "genre": "mystery",
        "title": "The Lighthouse",
        "characters": ("Mara",),
        "previous_segments": ("The lamp had been dark for three nights.", "Mara climbed."),
        **story_fields,
    }
    return GenerationRequest(
        user_id="u",
        purpose=Purpose.story_continuation,
        subject=Subject("story", "s"),
        story=StoryInputs(**story),
        direction="She finds the logbook.",
    )


def test_memory_lore_story_authors_note_task_and_direction_come_in_that_order():
    prompt = build_prompt(
        request(
            memory="Mara is afraid of the sea.",
            lore=("The lighthouse was built in 1887.", "Tom is the ferryman."),
            authors_note="Keep the tone quiet and eerie.",
        )
    ).user

    order = [
        "Characters:",
        "Memory (keep this in mind throughout):\nMara is afraid of the sea.",
        "World information:\n- The lighthouse was built in 1887.\n- Tom is the ferryman.",
        "The story so far:\nThe lamp had been dark for three nights.\n\nMara climbed.",
        "[Author's note: Keep the tone quiet and eerie.]",
        "Continue the story with its next segment.",
        "She finds the logbook.",
    ]
    positions = [prompt.index(part) for part in order]
    assert positions == sorted(positions), prompt


def test_without_memory_lore_or_note_the_prompt_has_no_such_sections():
    prompt = build_prompt(request()).user

    assert "Memory" not in prompt
    assert "World information" not in prompt
    assert "Author's note" not in prompt
    assert "The story so far:" in prompt


def test_a_lore_entry_of_several_lines_stays_one_list_item():
    prompt = build_prompt(request(lore=("The keeper:\nold and deaf.",))).user

    assert "- The keeper:\n  old and deaf." in prompt


def test_approximate_tokens_are_characters_over_four_rounded_up():
    assert [approximate_tokens("x" * n) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]


async def test_the_offline_generator_writes_with_memory_lore_and_note_and_counts_them():
    provider = OfflineProvider()
    plain = request()
    shaped = request(
        memory="Mara is afraid of the sea.",
        lore=("The lighthouse was built in 1887.",),
        authors_note="Keep it eerie.",
    )

    completion = await provider.complete(shaped)

    assert completion.text.strip()
    assert provider.count_prompt_tokens(shaped) > provider.count_prompt_tokens(plain)
