"""Council prompts: what each stage's model is shown, and that the offline
texts have the shape the real answers must have."""

from __future__ import annotations

import random

import pytest

from fabula_generation.council.prompts import (
    DEFAULT_TITLE,
    HISTORY_TURNS,
    OFFLINE_MARK,
    Conversation,
    Exchange,
    FollowUpAnswer,
    MemberAnswer,
    MemberReview,
    chairman_prompt,
    fallback_title,
    follow_up_prompt,
    member_prompt,
    parse_follow_up_questions,
    parse_title,
    review_prompt,
    title_prompt,
)
from fabula_generation.council.ranking import (
    Review,
    aggregate,
    assign_labels,
    parse_ranking,
)

QUESTION = "Should my detective novel reveal the killer early?"
MEMBERS = ["gpt-4o", "claude-sonnet", "mistral-large"]
ANSWERS = {
    "gpt-4o": "Reveal late; keep suspense.",
    "claude-sonnet": "It depends on the form: an inverted mystery (Columbo) reveals early.",
    "mistral-large": "Early reveals work for thrillers.",
}


def test_member_prompt_carries_earlier_turns_and_follow_up_answers_before_the_task():
    conversation = Conversation(
        history=[Exchange("What genre sells best?", "Romance, then crime.")],
        follow_ups=[FollowUpAnswer("Who is the audience?", "Adult readers.")],
    )

    prompt = member_prompt(QUESTION, conversation, member="gpt-4o")

    order = [
        "User: What genre sells best?",
        "Council: Romance, then crime.",
        f"Question: {QUESTION}",
        "Q: Who is the audience?",
        "A: Adult readers.",
        "Answer the question.",
    ]
    positions = [prompt.user.index(part) for part in order]
    assert positions == sorted(positions), prompt.user


def test_member_prompt_keeps_only_the_recent_turns():
    history = [Exchange(f"question {i}", f"answer {i}") for i in range(HISTORY_TURNS + 2)]

    prompt = member_prompt(QUESTION, Conversation(history=history), member="m").user

    assert "question 0\n" not in prompt and "question 1\n" not in prompt
    assert f"question {HISTORY_TURNS + 1}" in prompt


def test_offline_members_differ_and_are_marked_offline():
    texts = {member_prompt(QUESTION, Conversation(), member=m).offline_text for m in MEMBERS}

    assert len(texts) == len(MEMBERS)
    assert all(text.startswith(OFFLINE_MARK) for text in texts)


def test_review_prompt_shows_only_labels_and_demands_a_final_ranking():
    assignment = assign_labels(MEMBERS, "gpt-4o", random.Random(3))

    prompt = review_prompt(QUESTION, assignment, ANSWERS)

    for member in MEMBERS:
        assert member not in prompt.user
    for label, member in assignment.members_by_label.items():
        assert f"Response {label}:\n{ANSWERS[member]}" in prompt.user
    assert "FINAL RANKING:\n1. Response A\n2. Response B\n3. Response C" in prompt.user


def test_the_offline_review_parses_and_ranks_longer_answers_first():
    assignment = assign_labels(MEMBERS, "gpt-4o", random.Random(3))

    offline = review_prompt(QUESTION, assignment, ANSWERS).offline_text
    parsed = parse_ranking(offline, assignment.labels)

    assert offline.startswith(OFFLINE_MARK)
    assert [assignment.members_by_label[label] for label in parsed.order] == [
        "claude-sonnet",
        "mistral-large",
        "gpt-4o",
    ]


def test_chairman_sees_answers_by_model_each_reviews_labels_and_the_aggregate():
    rng = random.Random(5)
    assignments = [assign_labels(MEMBERS, reviewer, rng) for reviewer in MEMBERS]
    texts = [review_prompt(QUESTION, a, ANSWERS).offline_text for a in assignments]
    ranking = aggregate(
        [Review(a, parse_ranking(t, a.labels)) for a, t in zip(assignments, texts)], MEMBERS
    )

    prompt = chairman_prompt(
        QUESTION,
        [MemberAnswer(m, ANSWERS[m]) for m in MEMBERS],
        [MemberReview(a, t) for a, t in zip(assignments, texts)],
        ranking,
    )

    for member in MEMBERS:
        assert f"Model: {member}\n{ANSWERS[member]}" in prompt.user
    first = assignments[0]
    key = ", ".join(f"Response {label} = {m}" for label, m in first.members_by_label.items())
    assert f"Reviewer: gpt-4o (its labels: {key})" in prompt.user
    assert "1. claude-sonnet: 1.00 from 2 votes" in prompt.user
    assert prompt.offline_text.startswith(OFFLINE_MARK)
    assert ANSWERS["claude-sonnet"] in prompt.offline_text


def test_chairman_without_any_answer_still_has_an_offline_text():
    prompt = chairman_prompt(QUESTION, [], [], [])

    assert "no member answered" in prompt.offline_text
    assert "aggregate ranking" not in prompt.user


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NONE", []),
        ("none.", []),
        ("**NONE**", []),
        ("", []),
        ("1. Who is the audience?\n2. How long is the novel?", ["Who is the audience?", "How long is the novel?"]),
        ("Some questions:\n- Who is the audience?\n- Who is the audience?\n- Which era?", ["Who is the audience?", "Which era?"]),
        ("Who is it for?\nI need to know that first.\nWhat length?", ["Who is it for?", "What length?"]),
        ("1) A?\n2) B?\n3) C?\n4) D?\n5) E?", ["A?", "B?", "C?"]),
    ],
)
def test_follow_up_questions_are_parsed_up_to_the_limit(text, expected):
    assert parse_follow_up_questions(text, 3) == expected


def test_follow_up_prompt_caps_the_number_and_offline_asks_that_many():
    prompt = follow_up_prompt(QUESTION, Conversation(), 5)

    assert "up to 3 short clarifying questions" in prompt.user
    assert "NONE" in prompt.user
    assert len(parse_follow_up_questions(prompt.offline_text, 5)) == 3
    assert len(parse_follow_up_questions(follow_up_prompt(QUESTION, Conversation(), 2).offline_text, 2)) == 2
    assert follow_up_prompt(QUESTION, Conversation(), 0).offline_text == "NONE"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Revealing the Killer Early", "Revealing the Killer Early"),
        ('"Revealing the Killer Early."', "Revealing the Killer Early"),
        ("Title: **When to Reveal the Killer**\nHope this helps", "When to Reveal the Killer"),
        ("", "Should my detective novel reveal the…"),
        ("   \n", "Should my detective novel reveal the…"),
        ("x" * 200, "Should my detective novel reveal the…"),
    ],
)
def test_parse_title_cleans_the_models_title_or_falls_back(text, expected):
    assert parse_title(text, QUESTION) == expected


def test_fallback_title_of_short_and_empty_questions():
    assert fallback_title("Why is the sky blue?") == "Why is the sky blue"
    assert fallback_title("   ") == DEFAULT_TITLE
    assert title_prompt(QUESTION).offline_text == fallback_title(QUESTION)
    assert QUESTION in title_prompt(QUESTION).user
