"""Quality metrics of a narrative: each value checked against one computed by hand."""

from __future__ import annotations

import math

import pytest

from fabula_generation.jobs.quality import (
    COMPONENT_WEIGHTS,
    measure,
    score_components,
)

PROSE = (
    "The lighthouse stood at the edge of the world, and Mara had kept it for eleven years. "
    "Every night she climbed the stairs, counted the steps, and lit the lamp.\n\n"
    "“Do you ever get tired of it?” asked Tomas, the ferryman's son.\n\n"
    "“Never,” she said. “The sea changes every night. The light is the only thing that "
    "doesn't.”\n\n"
    "He laughed, but he did not understand, not yet. Storms came in the autumn, heavy and "
    "grey, and the ships that passed the point needed her more than ever."
)


def test_a_loop_of_two_words_repeats_itself_and_has_almost_no_diversity():
    metrics, _ = measure("tick tock tick tock tick tock tick tock", 8)

    # 3-grams: tick-tock-tick, tock-tick-tock, ×3 each: 6 in all, 2 distinct → 4/6 repeat.
    assert metrics["repetition"] == pytest.approx(4 / 6, abs=1e-4)
    # MTLD: the type-token ratio drops to 2/3 (≤ 0.72) at every third word: runs
    # "tick tock tick" | "tock tick tock" | "tick tock" (TTR 1, adds 0) → 2 factors,
    # 8 words / 2 = 4 forwards, the same backwards.
    assert metrics["lexical_diversity"] == pytest.approx(4.0)
    assert metrics["word_count"] == 8
    assert metrics["length_accuracy"] == 1.0


def test_words_that_never_repeat_have_no_repetition_and_full_diversity():
    metrics, _ = measure("Morning light found seven quiet boats drifting home.", 8)

    assert metrics["repetition"] == 0.0
    # Every word new: no factor completes and the TTR never falls, so MTLD = the word count.
    assert metrics["lexical_diversity"] == pytest.approx(8.0)


def test_flesch_reading_ease_follows_the_english_formula():
    metrics, _ = measure("The cat sat on the mat.", 6)

    # 206.835 − 1.015 × (6 words / 1 sentence) − 84.6 × (6 syllables / 6 words)
    assert metrics["readability"] == pytest.approx(206.835 - 1.015 * 6 - 84.6 * 1, abs=0.01)


def test_sentence_statistics_count_words_per_sentence():
    metrics, _ = measure("One two three. Four five! Six?", 6)

    assert metrics["sentence_count"] == 3
    assert metrics["avg_sentence_words"] == 2.0
    # population standard deviation of 3, 2, 1
    assert metrics["sentence_words_stdev"] == pytest.approx(math.sqrt(2 / 3), abs=0.01)


def test_a_heading_without_a_full_stop_is_a_sentence_of_its_own():
    metrics, _ = measure("Chapter One\n\nShe woke early. The house was cold.", 9)

    assert metrics["sentence_count"] == 3


@pytest.mark.parametrize(
    "text",
    [
        "“Come here.” “Why?” “Because I said so.”",  # English
        "„Komm her“ „Warum?“",  # German
        "„Chodź tutaj” „Dlaczego?”",  # Polish
        "« Viens ici » « Pourquoi ? »",  # French
        "»Komm her« »Warum?«",  # German, chevrons
        '"Come here." "Why?"',  # straight quotes
    ],
)
def test_all_dialogue_text_has_a_dialogue_share_of_one(text):
    metrics, _ = measure(text, 5)

    assert metrics["dialogue_share"] == pytest.approx(1.0)


def test_dialogue_share_counts_only_the_words_inside_quotes():
    metrics, _ = measure("“Run,” she said. He ran.", 5)

    # 1 quoted word ("Run") of 5 words
    assert metrics["dialogue_share"] == pytest.approx(1 / 5)


def test_an_unclosed_quote_ends_with_its_paragraph():
    metrics, _ = measure("“I went to the sea\n\nand then she left.", 9)

    # Multi-paragraph speech leaves the opening paragraph's quote unclosed: its 5 words are
    # dialogue, the next paragraph (4 words) is not.
    assert metrics["dialogue_share"] == pytest.approx(5 / 9, abs=1e-4)


@pytest.mark.parametrize(
    ("words", "target", "accuracy"),
    [(100, 100, 1.0), (150, 100, 0.5), (50, 100, 0.5), (300, 100, 0.0), (10, 0, 0.0)],
)
def test_length_accuracy_is_how_close_the_word_count_came_to_the_target(words, target, accuracy):
    metrics, _ = measure(" ".join(f"word{i}" for i in range(words)), target)

    assert metrics["word_count"] == words
    assert metrics["length_accuracy"] == pytest.approx(accuracy)


@pytest.mark.parametrize("text", ["", "   \n\n  ", "— … !"])
def test_a_text_without_words_measures_zero_without_crashing(text):
    metrics, overall = measure(text, 3000)

    assert overall == 0.0
    # word_count counts whitespace-separated tokens as stories does ("— … !" is 3 of them).
    assert metrics.pop("word_count") == len(text.split())
    assert set(metrics.values()) == {0.0}


def test_the_overall_score_is_the_documented_weighted_sum_of_its_components():
    metrics, overall = measure(PROSE, 90)
    components = score_components(metrics)

    assert sum(COMPONENT_WEIGHTS.values()) == pytest.approx(1.0)
    assert set(components) == set(COMPONENT_WEIGHTS)
    assert all(0.0 <= value <= 1.0 for value in components.values())
    expected = 100 * sum(COMPONENT_WEIGHTS[name] * components[name] for name in components)
    assert overall == pytest.approx(expected, abs=0.05)
    # This prose is on length, readable, varied and never loops.
    assert overall > 90


def test_a_looping_text_scores_far_below_varied_prose_of_the_same_length():
    words = len(PROSE.split())
    loop = " ".join(["The sea was grey."] * (words // 4))

    _, varied_score = measure(PROSE, words)
    _, loop_score = measure(loop, words)

    assert loop_score < varied_score - 30
