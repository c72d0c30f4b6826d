"""Majority vote over sampled answers (normalised before counting)."""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCT = str.maketrans("", "", string.punctuation.replace(".", "").replace("-", ""))


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation, collapse spaces, and standardise numbers (``3.0`` -> ``3``)."""
    text = text.strip().lower().translate(_PUNCT)
    text = re.sub(r"\s+", " ", text).strip(" .")

    def number(m: re.Match[str]) -> str:
        value = float(m.group(0))
        return str(int(value)) if value.is_integer() else repr(value)

    return re.sub(r"-?\d+(?:\.\d+)?", number, text)


def majority_vote(answers: list[str]) -> str:
    """The most common normalised non-empty answer (ties: the one seen first); '' if none."""
    normalised = [normalize_answer(a) for a in answers if a and a.strip()]
    if not normalised:
        return ""
    counts = Counter(normalised)
    best = max(counts.values())
    return next(a for a in normalised if counts[a] == best)
