"""The prompts of a council's model calls, built from facts (the question,
the conversation, the answers): stage 1 (a member answers alone), stage 2
(a member reviews the anonymised answers and ranks them), stage 3 (the
chairman's final answer), the chairman's clarifying questions and the
conversation's title. Each is a ComposedPrompt, whose offline_text is what the
built-in offline generator answers: deterministic, marked as offline, and in
the shape the real answer must have (a review ends with a FINAL RANKING that
`parse_ranking` reads)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fabula_generation.council.ranking import (
    AggregateEntry,
    LabelAssignment,
    display_label,
)
from fabula_generation.generations.domain import ComposedPrompt

# Room each call's answer gets, in tokens.
MEMBER_MAX_TOKENS = 1500
REVIEW_MAX_TOKENS = 1200
CHAIRMAN_MAX_TOKENS = 2000
FOLLOW_UP_MAX_TOKENS = 300
TITLE_MAX_TOKENS = 30
# Earlier turns a prompt carries: the most recent ones, each earlier answer
# cut to this many characters, so a long conversation keeps a bounded prompt.
HISTORY_TURNS = 6
HISTORY_ANSWER_CHARS = 2000
# The chairman asks at most this many clarifying questions, whatever is configured.
MAX_FOLLOW_UP_QUESTIONS = 3
TITLE_MAX_CHARS = 60
FALLBACK_TITLE_WORDS = 6
DEFAULT_TITLE = "New conversation"
OFFLINE_MARK = "[offline council]"

MEMBER_SYSTEM = (
    "You are a member of a council of AI models. Answer the user's question on your own, "
    "as well as you can: accurate, complete and clear. Other members answer the same "
    "question independently, and all answers will be compared."
)
REVIEW_SYSTEM = (
    "You are a member of a council of AI models, reviewing the answers the council gave to "
    "a question. The answers are anonymous. Judge them on accuracy, completeness and "
    "clarity, without regard to style or length alone."
)
CHAIRMAN_SYSTEM = (
    "You are the chairman of a council of AI models. Several models answered the user's "
    "question and reviewed each other's answers anonymously. Write the single best final "
    "answer to the user's question, drawing on all of it."
)
FOLLOW_UP_SYSTEM = (
    "You are the chairman of a council of AI models, about to ask the council a user's "
    "question. Decide whether the question needs clarifying first."
)
TITLE_SYSTEM = "You write short titles for conversations."


@dataclass(frozen=True)
class Exchange:
    """An earlier turn of the conversation: the user's question and the
    council's final answer to it."""

    question: str
    answer: str


@dataclass(frozen=True)
class FollowUpAnswer:
    """The user's answer to one of the chairman's clarifying questions."""

    question: str
    answer: str


@dataclass(frozen=True)
class Conversation:
    """What came before the question: earlier turns, oldest first, and the
    answers to the chairman's clarifying questions about this question."""

    history: Sequence[Exchange] = ()
    follow_ups: Sequence[FollowUpAnswer] = ()


@dataclass(frozen=True)
class MemberAnswer:
    """A member's stage-1 answer; `member` is its model name."""

    member: str
    text: str


@dataclass(frozen=True)
class MemberReview:
    """A member's stage-2 review as written, with the labels it saw."""

    assignment: LabelAssignment
    text: str


def _history_lines(conversation: Conversation) -> list[str]:
    lines: list[str] = []
    turns = list(conversation.history)[-HISTORY_TURNS:]
    if turns:
        lines += ["The conversation so far, oldest first:", ""]
        for turn in turns:
            answer = turn.answer.strip()
            if len(answer) > HISTORY_ANSWER_CHARS:
                answer = answer[:HISTORY_ANSWER_CHARS].rstrip() + " […]"
            lines += [f"User: {turn.question.strip()}", f"Council: {answer}", ""]
    return lines


def _question_lines(question: str, conversation: Conversation) -> list[str]:
    lines = [*_history_lines(conversation), f"Question: {question.strip()}"]
    answered = [f for f in conversation.follow_ups if f.answer.strip()]
    if answered:
        lines += ["", "Asked to clarify, the user answered:"]
        for follow_up in answered:
            if follow_up.question.strip():
                lines.append(f"- Q: {follow_up.question.strip()}")
                lines.append(f"  A: {follow_up.answer.strip()}")
            else:
                lines.append(f"- {follow_up.answer.strip()}")
    return lines


def _pick(options: Sequence[str], key: str) -> str:
    """A stable choice (not Python's per-process string hash)."""
    return options[hashlib.sha256(key.encode()).digest()[0] % len(options)]


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# Stage 1 ---------------------------------------------------------------------


def member_prompt(question: str, conversation: Conversation, *, member: str) -> ComposedPrompt:
    """A member answers alone. `member` (its model name) only shapes the
    offline text, so offline members differ from each other."""
    user = "\n".join(
        [*_question_lines(question, conversation), "", "Answer the question."]
    )
    opening = _pick(
        (
            "In short, the answer depends on a few key points.",
            "Here is a direct answer, followed by the reasoning.",
            "Let me break the question down step by step.",
        ),
        member,
    )
    offline = (
        f"{OFFLINE_MARK} {member} answers without a language model. {opening} "
        f"You asked: “{_quote(question)}”. A real model would answer it here."
    )
    return ComposedPrompt(MEMBER_SYSTEM, user, MEMBER_MAX_TOKENS, offline)


# Stage 2 ---------------------------------------------------------------------


def review_prompt(
    question: str,
    assignment: LabelAssignment,
    answers: Mapping[str, str],
    conversation: Conversation = Conversation(),
) -> ComposedPrompt:
    """The reviewer sees every answer under its label (`answers`: member id
    -> text) and must end with a FINAL RANKING list that parse_ranking reads."""
    labelled = [
        (label, answers[member]) for label, member in assignment.members_by_label.items()
    ]
    lines = [*_question_lines(question, conversation), "", "The answers:"]
    for label, text in labelled:
        lines += ["", f"{display_label(label)}:", text.strip()]
    example = "\n".join(
        f"{index}. {display_label(label)}" for index, (label, _) in enumerate(labelled, start=1)
    )
    lines += [
        "",
        "Evaluate each response briefly: what it does well and what it does poorly.",
        "Then end your answer with your ranking, best first, exactly in this format: the line "
        '"FINAL RANKING:" and then a numbered list with one response per line, and nothing '
        "after it. For example:",
        "",
        "FINAL RANKING:",
        example,
    ]
    # Offline: longer answers first (ties in label order), a stand-in judgement.
    ranked = sorted(labelled, key=lambda pair: -len(pair[1].strip()))
    offline_lines = [
        f"{OFFLINE_MARK} This review was written without a language model; it ranks "
        "longer responses higher."
    ]
    offline_lines += [
        f"{display_label(label)} has {len(text.split())} words." for label, text in labelled
    ]
    offline_lines += ["", "FINAL RANKING:"]
    offline_lines += [
        f"{index}. {display_label(label)}" for index, (label, _) in enumerate(ranked, start=1)
    ]
    return ComposedPrompt(
        REVIEW_SYSTEM, "\n".join(lines), REVIEW_MAX_TOKENS, "\n".join(offline_lines)
    )


# Stage 3 ---------------------------------------------------------------------


def chairman_prompt(
    question: str,
    answers: Sequence[MemberAnswer],
    reviews: Sequence[MemberReview],
    ranking: Sequence[AggregateEntry],
    conversation: Conversation = Conversation(),
) -> ComposedPrompt:
    """The chairman sees every answer with its model, every review with the
    labels that reviewer saw (labels are shuffled per reviewer), and the
    aggregate ranking, and writes the one final answer."""
    lines = [*_question_lines(question, conversation), "", "STAGE 1, the members' answers:"]
    for answer in answers:
        lines += ["", f"Model: {answer.member}", answer.text.strip()]
    if reviews:
        lines += ["", "STAGE 2, the members' reviews of the anonymised answers:"]
        for review in reviews:
            key = ", ".join(
                f"{display_label(label)} = {member}"
                for label, member in review.assignment.members_by_label.items()
            )
            lines += [
                "",
                f"Reviewer: {review.assignment.reviewer_id} (its labels: {key})",
                review.text.strip(),
            ]
    ranked = [entry for entry in ranking if entry.average_rank is not None]
    if ranked:
        lines += [
            "",
            "The aggregate ranking (mean position in the reviews, 1 is best; "
            "a member's vote for its own answer is not counted):",
        ]
        lines += [
            f"{index}. {entry.member_id}: {entry.average_rank:.2f} "
            f"from {entry.votes} vote{'s' if entry.votes != 1 else ''}"
            for index, entry in enumerate(ranked, start=1)
        ]
    lines += [
        "",
        "Write the final answer to the user's question. Take the best of the answers, correct "
        "what the reviews found wrong, and answer the user directly; do not describe the "
        "council or its process.",
    ]
    best = next((a for a in answers if ranked and a.member == ranked[0].member_id), None)
    if best is None and answers:
        best = answers[0]
    offline = (
        f"{OFFLINE_MARK} The chairman decided without a language model, taking the "
        + (
            f"answer the council ranked best, from {best.member}:\n\n{best.text.strip()}"
            if best is not None
            else "question alone: no member answered."
        )
    )
    return ComposedPrompt(CHAIRMAN_SYSTEM, "\n".join(lines), CHAIRMAN_MAX_TOKENS, offline)


# Clarifying questions ----------------------------------------------------------

_NONE = re.compile(r"^[\s*_`\"'.]*none\b", re.IGNORECASE)
_ITEM_MARKER = re.compile(r"^\s*(?:[-*+•]|\(?\d{1,2}[.):]|#\d{1,2})\s*")

OFFLINE_FOLLOW_UPS = (
    "What is the context in which you are asking?",
    "What would a good answer let you do?",
    "Is there anything the answer must take into account?",
)


def follow_up_prompt(
    question: str, conversation: Conversation, max_questions: int
) -> ComposedPrompt:
    """The chairman asks up to `max_questions` (at most MAX_FOLLOW_UP_QUESTIONS)
    clarifying questions, or answers NONE."""
    limit = max(0, min(max_questions, MAX_FOLLOW_UP_QUESTIONS))
    user = "\n".join(
        [
            *_history_lines(conversation),
            f"Question: {question.strip()}",
            "",
            f"If the question is ambiguous or lacks what a good answer needs, ask up to {limit} "
            "short clarifying questions, as a numbered list with one question per line and "
            "nothing else. If it is clear enough to answer, reply with the single word NONE.",
        ]
    )
    offline = "\n".join(
        f"{index}. {OFFLINE_MARK} {text}"
        for index, text in enumerate(OFFLINE_FOLLOW_UPS[:limit], start=1)
    ) or "NONE"
    return ComposedPrompt(FOLLOW_UP_SYSTEM, user, FOLLOW_UP_MAX_TOKENS, offline)


def parse_follow_up_questions(text: str, max_questions: int) -> list[str]:
    """The clarifying questions in the chairman's answer, at most
    `max_questions`; empty for NONE or an empty answer. Questions are the
    list items, or, with no list, the lines ending in a question mark."""
    limit = max(0, min(max_questions, MAX_FOLLOW_UP_QUESTIONS))
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or limit == 0 or _NONE.match(lines[0]):
        return []
    items = [_ITEM_MARKER.sub("", line, count=1) for line in lines if _ITEM_MARKER.match(line)]
    if not items:
        items = [line for line in lines if line.rstrip().endswith("?")]
    questions: list[str] = []
    for item in items:
        question = item.strip().strip("*_`").strip()
        if question and question not in questions:
            questions.append(question)
    return questions[:limit]


# Title -------------------------------------------------------------------------

_TITLE_PREFIX = re.compile(r"^\s*(?:#+\s*)?(?:\*\*)?\s*title\s*:\s*", re.IGNORECASE)


def title_prompt(question: str) -> ComposedPrompt:
    user = "\n".join(
        [
            f"Question: {question.strip()}",
            "",
            "Write a short title (three to six words) for a conversation that begins with this "
            "question. Answer with the title only: no quotes, no punctuation at the end.",
        ]
    )
    return ComposedPrompt(TITLE_SYSTEM, user, TITLE_MAX_TOKENS, fallback_title(question))


def fallback_title(question: str) -> str:
    """The question's first words, when no model gave a usable title."""
    words = question.split()
    if not words:
        return DEFAULT_TITLE
    title = " ".join(words[:FALLBACK_TITLE_WORDS])
    title = title[:TITLE_MAX_CHARS].rstrip(" ,;:.!?")
    if len(words) > FALLBACK_TITLE_WORDS or len(" ".join(words)) > TITLE_MAX_CHARS:
        title += "…"
    return title or DEFAULT_TITLE


def parse_title(text: str, question: str) -> str:
    """The model's title cleaned of quotes, markdown and a "Title:" prefix;
    the fallback title when nothing usable is left or it is too long."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    title = _TITLE_PREFIX.sub("", line)
    title = title.strip().strip("*_#`\"'“”‘’«»").strip().rstrip(".")
    title = " ".join(title.split())
    if not title or len(title) > TITLE_MAX_CHARS:
        return fallback_title(question)
    return title
