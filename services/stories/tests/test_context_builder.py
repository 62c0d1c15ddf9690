"""The model's context: what goes in, in what order, within the token budget."""

from __future__ import annotations

import datetime as dt
import uuid

from fabula.generation.v1 import generation_pb2
from fabula_stories.context.builder import (
    ContextLimits,
    LoreCandidate,
    PathText,
    StoryFacts,
    approximate_tokens,
    build_context,
    generate_request,
    mentions,
    story_inputs,
)

FACTS = StoryFacts(genre="mystery", title="The Lighthouse", characters=["Mara"], opening_line="")
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def path(*texts: str) -> list[PathText]:
    """A followed path of these texts (oldest first), given newest first."""
    segments = [PathText(uuid.uuid4(), position, text) for position, text in enumerate(texts, 1)]
    return segments[::-1]


def entry(text: str, *keys: str, minutes: int = 0, **fields) -> LoreCandidate:
    return LoreCandidate(
        id=uuid.uuid4(), text=text, keys=keys, created_at=T0 + dt.timedelta(minutes=minutes),
        **fields,
    )


def build(texts=("The fog came in.",), lore=(), direction="", facts=FACTS, **limits):
    return build_context(
        facts, path(*texts), direction, max_chars=100_000, lore=lore,
        limits=ContextLimits(**limits),
    )


def test_tokens_are_characters_over_four_rounded_up():
    assert [approximate_tokens("x" * n) for n in (0, 1, 3, 4, 5, 400)] == [0, 1, 1, 1, 2, 100]


def test_keys_match_whole_words_and_phrases_whatever_their_case():
    assert mentions("Then MARA came back.", "mara")
    assert not mentions("Then Marathon runners came.", "Mara")
    assert not mentions("the submarine", "marine")
    assert mentions("under the  old\nmill", "old mill")
    assert mentions("Zoë smiled.", "ZOË")
    assert not mentions("Zoëlle smiled.", "Zoë")
    assert mentions("He wrote C++ all day.", "c++")
    assert mentions("Straße und Weg", "straße")


def test_an_entry_is_included_only_when_a_key_appears_in_the_recent_story():
    lighthouse = entry("Built in 1887.", "lighthouse", "beacon")
    ferry = entry("The ferry leaves at dawn.", "ferry")

    built = build(texts=("Mara walked to the Beacon.",), lore=[lighthouse, ferry])

    assert [(hit.entry_id, hit.matched) for hit in built.lore] == [(lighthouse.id, "beacon")]
    assert story_inputs(built).lore == ["Built in 1887."]


def test_only_the_most_recent_segments_and_the_direction_are_searched_for_keys():
    lighthouse = entry("Built in 1887.", "lighthouse")
    ferry = entry("The ferry leaves at dawn.", "ferry")
    texts = ("The lighthouse stood.", "One.", "Two.", "Three.", "Four.")

    built = build(texts=texts, lore=[lighthouse, ferry], direction="Take the ferry",
                  lore_scan_segments=4)

    assert [hit.entry_id for hit in built.lore] == [ferry.id]
    assert [hit.entry_id for hit in build(texts=texts, lore=[lighthouse],
                                          lore_scan_segments=5).lore] == [lighthouse.id]


def test_secondary_keys_refine_the_match():
    text = ("Mara lit the lamp in the storm.",)
    any_of = entry("any", "Mara", secondary_keys=("storm", "fog"), secondary_logic="and_any")
    all_of = entry("all", "Mara", secondary_keys=("storm", "fog"), secondary_logic="and_all")
    none_of = entry("none", "Mara", secondary_keys=("fog",), secondary_logic="not_any")
    none_of_present = entry("x", "Mara", secondary_keys=("storm",), secondary_logic="not_any")
    missing_any = entry("y", "Mara", secondary_keys=("fog",), secondary_logic="and_any")

    built = build(texts=text, lore=[any_of, all_of, none_of, none_of_present, missing_any])

    assert sorted(hit.text for hit in built.lore) == ["any", "none"]


def test_constant_entries_come_first_then_hits_by_priority_then_oldest_first():
    old_low = entry("old low", "mara", minutes=0, priority=1)
    new_high = entry("new high", "mara", minutes=5, priority=9)
    old_high = entry("old high", "mara", minutes=1, priority=9)
    constant = entry("always", constant=True, priority=-5, minutes=9)

    built = build(texts=("Mara.",), lore=[old_low, new_high, old_high, constant])

    assert [hit.text for hit in built.lore] == ["always", "old high", "new high", "old low"]
    assert built.lore[0].matched == "constant"


def test_disabled_entries_are_never_included():
    built = build(texts=("Mara.",), lore=[entry("off", "mara", enabled=False),
                                          entry("off too", constant=True, enabled=False)])

    assert built.lore == []


def test_lore_stays_within_its_share_of_the_budget_the_rest_is_omitted():
    # 100 tokens of lore at most; each entry is 40 tokens.
    entries = [entry("x" * 160, "mara", priority=10 - n, minutes=n) for n in range(4)]

    built = build(texts=("Mara.",), lore=entries, max_tokens=400, lore_share=0.25)

    assert [hit.entry_id for hit in built.lore] == [entries[0].id, entries[1].id]
    assert built.lore_omitted == [entries[2].id, entries[3].id]


def test_memory_is_always_counted_first_and_segments_fill_the_rest_newest_first():
    memory = "m" * 400  # 100 tokens
    facts = StoryFacts("mystery", "T", [], "", memory=memory, authors_note="n" * 40)
    texts = ["s" * 200 for _ in range(6)]  # 50 tokens each

    built = build(texts=texts, facts=facts, direction="d" * 40, max_tokens=300)

    # 300 - 100 (memory) - 10 (note) - 10 (direction) leaves 180: three segments.
    assert [piece.position for piece in built.segments] == [4, 5, 6]
    assert built.segments_omitted == 3
    assert built.used_tokens == 100 + 10 + 10 + 150
    assert built.used_tokens <= built.max_tokens
    inputs = story_inputs(built)
    assert inputs.memory == memory and inputs.authors_note == "n" * 40


def test_the_newest_segment_keeps_its_end_when_it_alone_is_too_long():
    newest = " ".join(f"word{n}" for n in range(400))

    built = build(texts=("An old segment.", newest), max_tokens=256)

    [piece] = built.segments
    assert piece.truncated and piece.position == 2
    assert newest.endswith(piece.text) and piece.text.startswith("word")
    assert piece.tokens <= 256
    assert built.segments_omitted == 1


def test_a_long_memory_leaves_the_story_an_eighth_of_the_budget():
    facts = StoryFacts("mystery", "T", [], "", memory="m" * 10_000)

    built = build(texts=("s" * 2000,), facts=facts, max_tokens=800)

    [piece] = built.segments
    assert piece.tokens == 100 and piece.truncated


def test_the_request_carries_the_context_as_the_writer_sends_it():
    facts = StoryFacts("mystery", "T", ["Mara"], "", memory="remember", authors_note="note")
    built = build(texts=("Mara.",), facts=facts, direction="go on",
                  lore=[entry("lore", "mara")])
    user_id, story_id = uuid.uuid4(), uuid.uuid4()

    request = generate_request(built, user_id=user_id, story_id=story_id)

    assert request.purpose == generation_pb2.PURPOSE_STORY_CONTINUATION
    assert (request.subject.kind, request.subject.id) == ("story", str(story_id))
    assert request.direction == "go on"
    assert list(request.story.lore) == ["lore"]
    assert list(request.story.previous_segments) == ["Mara."]
