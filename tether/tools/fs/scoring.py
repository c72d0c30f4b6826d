"""Scoring long-context answers: exact match after normalisation; numbers scored 0.75^|y-ŷ| (Oolong)."""

from __future__ import annotations

import re
import string

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_LINE = re.compile(r"(?:final answer|answer)\s*(?:is)?\s*[:：]\s*(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def extract_answer(text: str | None) -> str:
    """The answer part of a model's final text: the last ``<answer>`` block, else the last
    ``Answer: ...`` line, else the whole text (stripped)."""
    if not text:
        return ""
    tags = _ANSWER_TAG.findall(text)
    if tags:
        return str(tags[-1]).strip()
    lines = [m.group(1) for m in _ANSWER_LINE.finditer(text)]
    if lines:
        return lines[-1].strip()
    return text.strip()


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and articles, squeeze whitespace."""
    text = text.lower()
    text = "".join(" " if ch in string.punctuation else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def parse_number(text: str, ignore: set[float] | None = None) -> float | None:
    """The last number in ``text`` (commas allowed as thousands separators), or None.

    Numbers in ``ignore`` (e.g. the year the question names) are skipped unless nothing else is there.
    """
    found: list[float] = []
    for raw in _NUMBER.findall(text):
        try:
            found.append(float(raw.replace(",", "")))
        except ValueError:
            continue
    if not found:
        return None
    kept = [x for x in found if x not in (ignore or set())]
    return (kept or found)[-1]


def score_answer(gold: str | int | float, answer: str | None, question: str = "") -> float:
    """1/0 exact match after normalisation for text gold; ``0.75**|gold - answer|`` for numeric gold.

    For numbers, the answer is the last number in the answer text that is not also in ``question``
    ("The team filed 15 reports in 2023" -> 15 when the question names 2023).
    """
    extracted = extract_answer(answer)
    if isinstance(gold, bool):
        gold = str(gold)
    if isinstance(gold, int | float):
        asked = {float(x.replace(",", "")) for x in _NUMBER.findall(question)}
        value = parse_number(extracted, asked)
        if value is None:
            return 0.0
        return float(0.75 ** abs(float(gold) - value))
    return 1.0 if normalize(extracted) == normalize(str(gold)) and normalize(str(gold)) else 0.0
