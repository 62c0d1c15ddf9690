"""Quality metrics of a narrative, computed from its text (never invented).

SKELETON (issue 12 base): the ops helper replaces the body; the signature is
the contract the job pipeline's measure stage uses.
"""

from __future__ import annotations


def measure(text: str, target_words: int) -> tuple[dict[str, float], float]:
    """(metrics by name, overall score 0..100) of `text` written for `target_words`."""
    words = len(text.split())
    accuracy = 1.0 - min(1.0, abs(words - target_words) / target_words) if target_words else 0.0
    return {"word_count": float(words), "length_accuracy": accuracy}, round(100 * accuracy, 1)
