"""Council stage 2: labels shuffled per reviewer, rankings read from messy
model output (flagged, never guessed), and the aggregate without self-votes."""

from __future__ import annotations

import random

import pytest

from fabula_generation.council.ranking import (
    AggregateEntry,
    LabelAssignment,
    ParsedRanking,
    Review,
    aggregate,
    assign_labels,
    parse_ranking,
)

LABELS = ("A", "B", "C")

EVALUATION = (
    "Response A is accurate but terse.\n"
    "Response B misses the second part of the question.\n"
    "Response C is thorough and well organised.\n\n"
)

# (case, text, the labels read best first; None: flagged unparseable)
MESSY_RANKINGS = [
    ("canonical", EVALUATION + "FINAL RANKING:\n1. Response C\n2. Response A\n3. Response B",
     ("C", "A", "B")),
    ("lowercase header, no colon", "final ranking\n1. Response B\n2. Response C\n3. Response A",
     ("B", "C", "A")),
    ("bold header and bold labels",
     "**FINAL RANKING:**\n1. **Response A**\n2. **Response C**\n3. **Response B**",
     ("A", "C", "B")),
    ("markdown heading", "### Final Ranking\n\n1. Response C\n\n2. Response B\n\n3. Response A",
     ("C", "B", "A")),
    ("parenthesis numbers and lowercase labels",
     "FINAL RANKING:\n1) response b\n2) response a\n3) response c", ("B", "A", "C")),
    ("hash numbers", "FINAL RANKING:\n#1 Response A\n#2 Response B\n#3 Response C",
     ("A", "B", "C")),
    ("bullets", "FINAL RANKING:\n- Response C\n- Response B\n- Response A", ("C", "B", "A")),
    ("bare letters with reasons",
     "FINAL RANKING:\n1. C: the most complete\n2. A - accurate\n3. B", ("C", "A", "B")),
    ("commentary before and after the list",
     "FINAL RANKING:\nHere is my ranking, best first:\n1. Response B (clearest)\n"
     "   It also cites its sources.\n2. Response C\n3. Response A\nThanks for reading!\n"
     "4. Response Q", ("B", "C", "A")),
    ("a duplicate keeps its first place",
     "FINAL RANKING:\n1. Response C\n2. Response C\n3. Response A\n4. Response B",
     ("C", "A", "B")),
    ("an unknown label is ignored",
     "FINAL RANKING:\n1. Response D\n2. Response B\n3. Response A", ("B", "A")),
    ("a partial ranking of two labels", "FINAL RANKING:\n1. Response A\n2. Response C",
     ("A", "C")),
    ("labels repeated in an evaluation list before the final list",
     "1. Response A: good\n2. Response B: weak\n3. Response C: best\n\n"
     "FINAL RANKING:\n1. Response C\n2. Response A\n3. Response B", ("C", "A", "B")),
    ("a header announced in the preamble, the real one at the end",
     "I will evaluate each response and end with a FINAL RANKING.\n"
     "Final ranking follows after the evaluation.\n" + EVALUATION +
     "FINAL RANKING:\n1. Response B\n2. Response A\n3. Response C", ("B", "A", "C")),
    ("a list ordered worst to best is taken literally, not reinterpreted",
     "FINAL RANKING (from worst to best):\n1. Response B\n2. Response A\n3. Response C",
     ("B", "A", "C")),
    ("inline numbered list on the header line",
     "FINAL RANKING: 1. Response C 2. Response B 3. Response A", ("C", "B", "A")),
    ("an ordered chain", "Final ranking: Response A > Response C > Response B",
     ("A", "C", "B")),
    ("no header: the last numbered list naming labels counts",
     "1. First, accuracy matters.\n2. Then clarity.\n\nMy order:\n"
     "1. Response B\n2. Response C\n3. Response A", ("B", "C", "A")),
    ("no header and no list: unparseable", EVALUATION + "Overall Response C wins.", None),
    ("no header, the last numbered list names no labels: unparseable",
     "1. Response A\n2. Response B\n\nTo improve:\n1. Add sources\n2. Be brief", None),
    ("an article is not a label", "FINAL RANKING:\n1. A thorough answer wins\n2. Another one",
     None),
    ("a header with one label only: unparseable", "FINAL RANKING:\n1. Response C", None),
    ("a header with a refusal: unparseable, not a guess from the evaluation",
     "1. Response A\n2. Response B\nFINAL RANKING: I cannot rank these responses.", None),
    ("empty answer", "", None),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [(text, expected) for _, text, expected in MESSY_RANKINGS],
    ids=[case for case, _, _ in MESSY_RANKINGS],
)
def test_parse_ranking_reads_messy_model_output_or_flags_it(text, expected):
    parsed = parse_ranking(text, LABELS)

    if expected is None:
        assert not parsed.parsed
        assert parsed.order == ()
        assert parsed.problem
    else:
        assert parsed.parsed, parsed.problem
        assert parsed.order == expected


def test_a_two_answer_council_needs_both_labels_and_a_one_answer_council_one():
    assert parse_ranking("FINAL RANKING:\n1. Response B\n2. Response A", ("A", "B")).order == (
        "B",
        "A",
    )
    assert parse_ranking("FINAL RANKING:\n1. Response A", ("A",)).order == ("A",)
    assert not parse_ranking("FINAL RANKING:\n1. Response A", ("A", "B")).parsed


def test_labels_are_shuffled_per_reviewer_and_cover_every_answer():
    members = ["gpt", "claude", "gemini", "grok"]
    rng = random.Random(7)

    assignments = [assign_labels(members, reviewer, rng) for reviewer in members]

    for assignment in assignments:
        assert assignment.labels == ("A", "B", "C", "D")
        assert sorted(assignment.members_by_label.values()) == sorted(members)
    assert len({tuple(a.members_by_label.values()) for a in assignments}) > 1
    assert assignments[0].label_of("claude") in ("A", "B", "C", "D")


def test_the_same_seed_gives_the_same_labels():
    members = ["gpt", "claude", "gemini"]

    first = assign_labels(members, "gpt", random.Random(1))
    again = assign_labels(members, "gpt", random.Random(1))

    assert first == again


def test_duplicate_member_ids_are_refused():
    with pytest.raises(ValueError):
        assign_labels(["gpt", "gpt"], "gpt", random.Random(0))


def review(reviewer: str, labels: dict[str, str], order: tuple[str, ...]) -> Review:
    return Review(LabelAssignment(reviewer, labels), ParsedRanking(order))


def test_aggregate_drops_each_self_vote_and_numbers_the_others_from_one():
    # Each reviewer ranks itself first; those votes must not count.
    reviews = [
        review("x", {"A": "x", "B": "y", "C": "z"}, ("A", "B", "C")),
        review("y", {"A": "z", "B": "y", "C": "x"}, ("B", "A", "C")),
        review("z", {"A": "y", "B": "x", "C": "z"}, ("C", "A", "B")),
    ]

    result = aggregate(reviews, ["x", "y", "z"])

    assert result == [
        AggregateEntry("y", 1.0, 2),
        AggregateEntry("z", 1.5, 2),
        AggregateEntry("x", 2.0, 2),
    ]


def test_aggregate_skips_unparseable_reviews_and_puts_members_without_votes_last():
    reviews = [
        review("x", {"A": "y", "B": "x", "C": "z"}, ("A", "B")),
        Review(
            LabelAssignment("y", {"A": "x", "B": "z", "C": "y"}),
            parse_ranking("I liked them all.", ("A", "B", "C")),
        ),
    ]

    result = aggregate(reviews, ["x", "y", "z"])

    assert result == [
        AggregateEntry("y", 1.0, 1),
        AggregateEntry("x", None, 0),
        AggregateEntry("z", None, 0),
    ]


def test_ties_go_to_more_votes_then_to_the_councils_order():
    reviews = [
        review("r1", {"A": "x", "B": "y", "C": "z"}, ("A", "B", "C")),
        review("r2", {"A": "z", "B": "y", "C": "x"}, ("A", "B", "C")),
        review("r3", {"A": "y", "B": "x"}, ("A", "B")),
    ]
    # x: 1, 3, 2 -> 2.0 (3 votes); y: 2, 2, 1 -> 1.67; z: 3, 1 -> 2.0 (2 votes)

    result = aggregate(reviews, ["z", "y", "x"])

    assert [(e.member_id, e.votes) for e in result] == [("y", 3), ("x", 3), ("z", 2)]

    even = [review("r", {"A": "x", "B": "y"}, ("A", "B")), review("s", {"A": "y", "B": "x"}, ("A", "B"))]
    assert [e.member_id for e in aggregate(even, ["y", "x"])] == ["y", "x"]
    assert [e.member_id for e in aggregate(even)] == ["x", "y"]


def test_aggregate_of_no_reviews_lists_the_council_unranked():
    assert aggregate([], ["x", "y"]) == [AggregateEntry("x", None, 0), AggregateEntry("y", None, 0)]
