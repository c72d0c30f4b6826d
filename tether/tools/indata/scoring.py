"""Scoring InData answers: numbers within tolerance, normalised strings, ordered lists, sets.

A gold spec is ``{"value", "type": "number"|"string"|"list"|"set", "tol", "abs_tol"}``.
The model's answer is the episode's final answer text; JSON is parsed when it parses.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_answer(text: str | None) -> Any:
    """The answer as data: JSON when the text is JSON, else the stripped text."""
    if text is None:
        return None
    s = text.strip()
    try:
        return json.loads(s)
    except (json.JSONDecodeError, ValueError):
        return s


def normalise(value: Any) -> str:
    """Case-folded, NFKC, whitespace-collapsed text without surrounding quotes or final period."""
    s = unicodedata.normalize("NFKC", str(value)).strip().strip("\"'`").strip()
    s = re.sub(r"\s+", " ", s).rstrip(".").strip()
    return s.casefold()


def to_number(value: Any) -> float | None:
    """A number from an answer: a JSON number, numeric text, or text holding exactly one number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list) and len(value) == 1:
        return to_number(value[0])
    if not isinstance(value, str):
        return None
    s = value.strip().replace("\u2212", "-")
    try:
        return float(s.replace(",", ""))
    except ValueError:
        pass
    found = _NUMBER.findall(s)
    if len(found) == 1:
        try:
            return float(found[0].replace(",", ""))
        except ValueError:
            return None
    return None


def numbers_match(got: float, gold: float, tol: float, abs_tol: float) -> bool:
    """Whether ``got`` is within relative ``tol`` (or absolute ``abs_tol``) of ``gold``."""
    if math.isnan(got) or math.isnan(gold):
        return False
    return abs(got - gold) <= max(tol * abs(gold), abs_tol)


def _item_match(got: Any, gold: Any, tol: float, abs_tol: float) -> bool:
    if isinstance(gold, int | float) and not isinstance(gold, bool):
        n = to_number(got)
        return n is not None and numbers_match(n, float(gold), tol, abs_tol)
    return normalise(got) == normalise(gold)


def _as_list(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        parts = [p.strip() for p in value.strip().strip("[]").split(",")]
        return [p for p in parts if p]
    return None


def score_answer(answer: str | None, gold: dict[str, Any]) -> float:
    """1.0 when ``answer`` matches the gold spec, else 0.0."""
    got = parse_answer(answer)
    if got is None:
        return 0.0
    kind = gold.get("type", "string")
    value = gold.get("value")
    tol, abs_tol = float(gold.get("tol", 0.0)), float(gold.get("abs_tol", 0.0))
    if kind == "number":
        n = to_number(got)
        if not isinstance(value, int | float):
            raise ValueError(f"gold value {value!r} is not a number")
        return float(n is not None and numbers_match(n, float(value), tol, max(abs_tol, 1e-9)))
    if kind == "string":
        return float(_item_match(got, value, tol, abs_tol))
    items = _as_list(got)
    if items is None or not isinstance(value, list) or len(items) != len(value):
        return 0.0
    if kind == "list":
        return float(all(_item_match(a, b, tol, abs_tol) for a, b in zip(items, value, strict=True)))
    if kind == "set":
        remaining = list(items)
        for b in value:
            hit = next((i for i, a in enumerate(remaining) if _item_match(a, b, tol, abs_tol)), None)
            if hit is None:
                return 0.0
            remaining.pop(hit)
        return 1.0
    raise ValueError(f"unknown answer type {kind!r}")
