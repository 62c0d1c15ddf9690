"""Quality metrics of a narrative, computed from its text (never invented).

`measure(text, target_words)` returns the raw metrics and an overall score 0..100:

- word_count: whitespace-separated words (the same count stories shows for a segment).
- readability: Flesch reading ease (textstat, English rules: the formula's constants and the
  syllable dictionary are English ones, so other languages get a rough figure only).
- sentence_count, avg_sentence_words, sentence_words_stdev: sentence statistics (sentences end
  at . ! ? … or a blank line).
- lexical_diversity: MTLD (McCarthy & Jarvis 2010), the mean length of word runs that keep a
  type-token ratio above 0.72, averaged over a forward and a backward pass. Unlike a plain
  type-token ratio it does not fall as a text gets longer, so a novella and a scene compare.
- repetition: share of word 3-grams that repeat an earlier 3-gram
  ((all − distinct) / all): 0 for none, near 1 for a text stuck in a loop.
- dialogue_share: share of words inside quotation marks (“…”, „…“, „…”, «…», »…«, "…"); an
  unclosed quote ends with its paragraph (the convention for multi-paragraph speech).
- length_accuracy: 1 − |words − target| / target, floored at 0.

Overall score = 100 × Σ weight × component, each component normalised to 0..1 (see
`COMPONENT_WEIGHTS` and docs/architecture.md, "Quality metrics"). dialogue_share is reported
but not scored: how much dialogue is right depends on the genre and the brief.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter

from textstat.textstat import textstatistics

MTLD_TTR_THRESHOLD = 0.72
REPETITION_NGRAM = 3

# Normalisation targets of the scored components (why: see the docstring of each helper).
READABLE_BAND = (50.0, 90.0)  # Flesch: "fairly difficult" .. "easy", where most fiction falls
DIVERSE_MTLD = 70.0  # MTLD at or above which a text counts as fully diverse
SENTENCE_WORDS_BAND = (8.0, 25.0)  # mean words per sentence of readable narrative prose

COMPONENT_WEIGHTS = {
    "length_accuracy": 0.25,
    "readability": 0.20,
    "lexical_diversity": 0.20,
    "repetition": 0.20,
    "sentence_length": 0.15,
}

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# A sentence ends at terminal punctuation (with any closing quotes/brackets after it) followed
# by whitespace, or at a blank line (headings and section breaks carry no full stop).
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’»«)\]]*\s+|\n\s*\n")
# Opening quote → the marks that close it. “ closes „ in German and opens in English.
_QUOTE_CLOSERS = {
    "“": "”",
    "„": "“”",
    "«": "»",
    "»": "«",
    '"': '"',
}

_english = textstatistics()
_english.set_lang("en_US")


def measure(text: str, target_words: int) -> tuple[dict[str, float], float]:
    """(metrics by name, overall score 0..100) of `text` written for `target_words`."""
    word_count = len(text.split())
    words = _words(text)
    if not words:
        empty = dict.fromkeys(
            (
                "word_count",
                "readability",
                "sentence_count",
                "avg_sentence_words",
                "sentence_words_stdev",
                "lexical_diversity",
                "repetition",
                "dialogue_share",
                "length_accuracy",
            ),
            0.0,
        )
        empty["word_count"] = float(word_count)
        return empty, 0.0

    sentence_lengths = [len(_words(s)) for s in sentences(text)]
    sentence_lengths = [n for n in sentence_lengths if n] or [len(words)]
    metrics = {
        "word_count": float(word_count),
        "readability": round(float(_english.flesch_reading_ease(text)), 2),
        "sentence_count": float(len(sentence_lengths)),
        "avg_sentence_words": round(statistics.fmean(sentence_lengths), 2),
        "sentence_words_stdev": round(statistics.pstdev(sentence_lengths), 2),
        "lexical_diversity": round(mtld(words), 2),
        "repetition": round(repetition(words), 4),
        "dialogue_share": round(dialogue_share(text), 4),
        "length_accuracy": round(length_accuracy(word_count, target_words), 4),
    }
    components = score_components(metrics)
    overall = 100 * sum(COMPONENT_WEIGHTS[name] * value for name, value in components.items())
    return metrics, round(overall, 1)


def score_components(metrics: dict[str, float]) -> dict[str, float]:
    """Each scored metric mapped to 0..1 (1 = as good as this measure can tell)."""
    return {
        "length_accuracy": metrics["length_accuracy"],
        "readability": _band(metrics["readability"], READABLE_BAND, zero_below=0.0, zero_above=120.0),
        "lexical_diversity": min(1.0, metrics["lexical_diversity"] / DIVERSE_MTLD),
        # Some repeated 3-grams are natural ("one of the"); a quarter repeated scores half.
        "repetition": max(0.0, 1.0 - 2.0 * metrics["repetition"]),
        "sentence_length": _band(
            metrics["avg_sentence_words"], SENTENCE_WORDS_BAND, zero_below=0.0, zero_above=50.0
        ),
    }


def sentences(text: str) -> list[str]:
    return [part for part in _SENTENCE_END.split(text) if part.strip()]


def mtld(words: list[str], threshold: float = MTLD_TTR_THRESHOLD) -> float:
    """Measure of textual lexical diversity: mean of the forward and backward passes."""
    if not words:
        return 0.0
    return (_mtld_pass(words, threshold) + _mtld_pass(words[::-1], threshold)) / 2


def _mtld_pass(words: list[str], threshold: float) -> float:
    factors = 0.0
    types: set[str] = set()
    tokens = 0
    ttr = 1.0
    for word in words:
        types.add(word)
        tokens += 1
        ttr = len(types) / tokens
        if ttr <= threshold:
            factors += 1
            types, tokens, ttr = set(), 0, 1.0
    if tokens:
        # The unfinished run counts as the fraction of a factor its TTR has fallen so far.
        factors += (1 - ttr) / (1 - threshold)
    # No factor at all: every word was new, as diverse as a text of this length can be.
    return len(words) / factors if factors else float(len(words))


def repetition(words: list[str], n: int = REPETITION_NGRAM) -> float:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return (len(grams) - len(Counter(grams))) / len(grams)


def dialogue_share(text: str) -> float:
    """Share of the text's words that stand inside quotation marks."""
    total = len(_words(text))
    if not total:
        return 0.0
    quoted: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        closers = ""  # the marks that close the quote we are in; "" = outside quotes
        for char in paragraph:
            if closers:
                if char in closers:
                    closers = ""
                    quoted.append(" ")
                else:
                    quoted.append(char)
            elif char in _QUOTE_CLOSERS:
                closers = _QUOTE_CLOSERS[char]
        quoted.append(" ")
    return len(_words("".join(quoted))) / total


def length_accuracy(words: int, target_words: int) -> float:
    if target_words <= 0:
        return 0.0
    return max(0.0, 1.0 - abs(words - target_words) / target_words)


def _words(text: str) -> list[str]:
    return [word.lower().replace("’", "'") for word in _WORD.findall(text)]


def _band(value: float, band: tuple[float, float], *, zero_below: float, zero_above: float) -> float:
    """1 inside `band`, falling linearly to 0 at `zero_below` / `zero_above`."""
    low, high = band
    if low <= value <= high:
        return 1.0
    if value < low:
        return max(0.0, (value - zero_below) / (low - zero_below))
    return max(0.0, (zero_above - value) / (zero_above - high))

