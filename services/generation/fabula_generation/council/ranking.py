"""Stage 2 of a council: anonymous labels, parsing a reviewer's ranking, and
the aggregate ranking (see "Council rankings" in docs/architecture.md).

Labels are letters ("A", "B", ...); a prompt shows them as "Response A".
Every reviewer sees every answer, its own included, under labels shuffled
for that reviewer; its vote for its own answer is dropped in `aggregate`.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# A ranking must name at least this many distinct labels (or all of them when
# fewer were shown) to count: one label alone says nothing about the others.
MIN_RANKED_LABELS = 2

LABEL_PREFIX = "Response"


def display_label(label: str) -> str:
    return f"{LABEL_PREFIX} {label}"


@dataclass(frozen=True)
class LabelAssignment:
    """What one reviewer sees: label -> member id, in label order."""

    reviewer_id: str
    members_by_label: Mapping[str, str]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.members_by_label)

    def label_of(self, member_id: str) -> str | None:
        for label, member in self.members_by_label.items():
            if member == member_id:
                return label
        return None


def assign_labels(
    member_ids: Sequence[str], reviewer_id: str, rng: random.Random
) -> LabelAssignment:
    """The answers of `member_ids` under labels A, B, C... in an order
    shuffled for this reviewer, the reviewer's own answer included (so every
    reviewer ranks the same set; its self-vote is dropped when aggregating)."""
    if len(set(member_ids)) != len(member_ids):
        raise ValueError("member ids must be distinct")
    if len(member_ids) > len(string.ascii_uppercase):
        raise ValueError(f"a council has at most {len(string.ascii_uppercase)} answers to label")
    shuffled = list(member_ids)
    rng.shuffle(shuffled)
    return LabelAssignment(
        reviewer_id=reviewer_id,
        members_by_label=dict(zip(string.ascii_uppercase, shuffled, strict=False)),
    )


@dataclass(frozen=True)
class ParsedRanking:
    """A reviewer's ranking, best first; `order` is empty and `problem` says
    why when the text held no ranking we could read (never guessed)."""

    order: tuple[str, ...]
    problem: str | None = None

    @property
    def parsed(self) -> bool:
        return self.problem is None


def unparseable(problem: str) -> ParsedRanking:
    return ParsedRanking(order=(), problem=problem)


# "FINAL RANKING" at the start of a line, after any markdown (#, **, _, >),
# in any case, with or without a colon; the rest of the line may hold the list.
_HEADER = re.compile(r"^[\s#>*_`~-]*final[\s*_]+ranking\b[^:\n]*:?(?P<rest>.*)$", re.IGNORECASE)
# A list item: "1.", "1)", "(1)", "#1", "1:", "1 -" or a bullet, then its text.
_NUMBERED = re.compile(
    r"^\s*[*_]*(?:\(\d{1,2}\)|#\s?\d{1,2}[.):]?|\d{1,2}(?:[.):]|\s+[-–—]))[*_]*\s*(?P<text>.*)$"
)
_BULLET = re.compile(r"^\s*[-*+•]\s+(?P<text>.*)$")
# Inline numbering inside one line: "1. Response C 2. Response A".
_INLINE_NUMBER = re.compile(r"(?:^|\s)(?:\(\d{1,2}\)|#?\d{1,2}[.)])\s+")
_RESPONSE_LABEL = re.compile(r"\bresponse\s+([a-z])\b", re.IGNORECASE)
# A bare label is the whole item ("C", "**C**") or a letter then a separator
# ("C: thorough", "C - thorough"); "A thorough answer" is an article, not a label.
_BARE_LABEL = re.compile(r"^[\s*_`\"'\[(]*([a-z])[\s*_`\"'\])]*(?:$|[:.,;)\-–—(])", re.IGNORECASE)


def _label_in(item: str, labels: Sequence[str]) -> str | None:
    """The label an item names: its first "Response X", else a bare letter
    standing alone at its start; None when it names no label shown."""
    found = _RESPONSE_LABEL.search(item)
    if found is None:
        found = _BARE_LABEL.match(item)
    if found is None:
        return None
    label = found.group(1).upper()
    return label if label in labels else None


def _list_item(line: str, *, bullets: bool) -> str | None:
    match = _NUMBERED.match(line) or (_BULLET.match(line) if bullets else None)
    return match.group("text") if match else None


def _ordered(items: Sequence[str], labels: Sequence[str]) -> tuple[str, ...]:
    order: list[str] = []
    for item in items:
        label = _label_in(item, labels)
        # Unknown labels are skipped; a repeated label keeps its first place.
        if label is not None and label not in order:
            order.append(label)
    return tuple(order)


def _items_of_section(rest: str, lines: Sequence[str], labels: Sequence[str]) -> list[str]:
    """The items of the list under a header: the header line's own rest and
    the lines after it. Text before the first item is skipped; once the list
    has begun, an unindented line that is not an item ends it (indented lines
    are an item's continuation)."""
    rest = rest.strip()
    if rest:
        inline = [part for part in _INLINE_NUMBER.split(rest) if part.strip()]
        if len(inline) >= 2:
            return inline
        if ">" in rest:
            return rest.split(">")
    items: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        item = _list_item(line, bullets=True)
        if item is not None:
            items.append(item)
        elif items and not line[:1].isspace():
            break
        elif not items and ">" in line and _label_in(line.split(">")[0], labels):
            # "Response C > Response A > Response B" on its own line.
            return line.split(">")
    return items


def _last_numbered_list(lines: Sequence[str]) -> list[str]:
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in lines:
        item = _list_item(line, bullets=False)
        if item is not None:
            if current is None:
                current = []
                blocks.append(current)
            current.append(item)
        elif line.strip() and not line[:1].isspace():
            current = None
    return blocks[-1] if blocks else []


def parse_ranking(text: str, labels: Sequence[str]) -> ParsedRanking:
    """The labels a review ranks, best first, read from its "FINAL RANKING:"
    section (the last such section that holds a list), taken literally: a list
    the model wrote worst-first is not turned round. Without any header, the
    last numbered list of the text counts if it names labels. A ranking must
    name at least MIN_RANKED_LABELS distinct labels; missing labels stay
    unranked."""
    labels = [label.upper() for label in labels]
    needed = min(MIN_RANKED_LABELS, len(labels))
    if not labels:
        return unparseable("no answers were shown to rank")
    lines = text.splitlines()
    headers = [
        (index, match)
        for index, line in enumerate(lines)
        if (match := _HEADER.match(line)) is not None
    ]
    if headers:
        for index, match in reversed(headers):
            order = _ordered(_items_of_section(match["rest"], lines[index + 1 :], labels), labels)
            if len(order) >= needed:
                return ParsedRanking(order)
        return unparseable("the FINAL RANKING section names fewer than two of the responses")
    order = _ordered(_last_numbered_list(lines), labels)
    if len(order) >= needed:
        return ParsedRanking(order)
    return unparseable("no FINAL RANKING section and no numbered list of the responses")


@dataclass(frozen=True)
class Review:
    """A reviewer's labels and what we read of its ranking."""

    assignment: LabelAssignment
    ranking: ParsedRanking


@dataclass(frozen=True)
class AggregateEntry:
    member_id: str
    # Mean position among the answers each counted reviewer ranked (1 = best);
    # None when no reviewer's vote for this member counted.
    average_rank: float | None
    votes: int


def aggregate(
    reviews: Sequence[Review], member_ids: Sequence[str] | None = None
) -> list[AggregateEntry]:
    """The aggregate ranking by mean position, best first.

    Per counted review, the reviewer's own answer is removed from its ranking
    and the rest are numbered 1, 2, ...: a member's position is where this
    reviewer put it among the others. Unparseable reviews count for nothing;
    labels a partial ranking left out get no vote from it. Ties go to the
    member with more votes, then to the order of `member_ids` (the council's
    configured order; member ids sorted when not given). Members without any
    vote come last with average_rank None.
    """
    known: list[str] = list(member_ids) if member_ids is not None else []
    positions: dict[str, list[int]] = {member: [] for member in known}
    for review in reviews:
        for member in review.assignment.members_by_label.values():
            positions.setdefault(member, [])
        if not review.ranking.parsed:
            continue
        others = [
            member
            for label in review.ranking.order
            if (member := review.assignment.members_by_label.get(label)) is not None
            and member != review.assignment.reviewer_id
        ]
        for position, member in enumerate(others, start=1):
            positions[member].append(position)
    order = known + sorted(member for member in positions if member not in known)
    tiebreak = {member: index for index, member in enumerate(order)}
    entries = [
        AggregateEntry(
            member_id=member,
            average_rank=sum(ranks) / len(ranks) if ranks else None,
            votes=len(ranks),
        )
        for member, ranks in positions.items()
    ]
    return sorted(
        entries,
        key=lambda entry: (
            entry.average_rank is None,
            entry.average_rank or 0.0,
            -entry.votes,
            tiebreak[entry.member_id],
        ),
    )
