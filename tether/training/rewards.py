"""Rule-based rewards for interleaved think-answer reasoning (arXiv 2505.19640), as pure functions.

    from tether.training.rewards import interleaved_reward
    r = interleaved_reward(response, ["Paris", "France"], "Euro", variant="time_discounted")
    r.total, r["format"], dict(r)   # {'format':…, 'final':…, 'intermediate':…, 'total':…}

The reward of a response is ``λ_f·format + λ_a·final + λ_i·intermediate``:

* **format**: +1 when every tag opens, closes and alternates properly
  (``<think>…</think><answer>…</answer>`` one or more times, nothing but whitespace and
  ``<tool_call>`` blocks outside them), −1 otherwise (``tether.agents.tags`` decides);
* **final** (only when the format is valid, else 0): the final answer is the last
  ``<answer>`` block; +2 when it equals the gold answer after ``normalize_answer``,
  −1.5 when it differs, −2 when it is unparseable (empty after normalisation, or the
  ``judge`` says it cannot be parsed);
* **intermediate** (base 0.5; ``N−1 = len(gold_intermediate)``; the blocks before the
  final one are the intermediate answers; gold ``j`` is correct when some intermediate
  block normalises to it and ``k_j`` is the 1-based index of the first such block):

  - ``all_or_none``: 0.5 when every gold intermediate answer is correct, else 0;
  - ``partial``: 0.5/(N−1) per correct gold answer;
  - ``time_discounted``: 0.5 when all are correct, else 0.5/(N−1) · Σ_correct 1/k_j;

  paid only when the gate is open: the format is valid, the final answer is correct and
  ``batch_acc ≥ prev_batch_acc − eps`` (the accuracy condition holds whenever either batch
  accuracy is None). With no gold intermediate answers it is 0.

Each function returns a breakdown (``RewardBreakdown``), not only a total: the three
parts are unweighted, ``total`` is the weighted sum.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Literal

from tether.agents.tags import parse_response

Variant = Literal["time_discounted", "partial", "all_or_none"]
VARIANTS: tuple[str, ...] = ("time_discounted", "partial", "all_or_none")
#: a judge compares (answer, gold): True correct, False wrong, None unparseable
Judge = Callable[[str, str], bool | None]

FORMAT_OK, FORMAT_BAD = 1.0, -1.0
FINAL_CORRECT, FINAL_WRONG, FINAL_UNPARSEABLE = 2.0, -1.5, -2.0
INTERMEDIATE_BASE = 0.5
DEFAULT_WEIGHTS: dict[str, float] = {"format": 1.0, "final": 1.0, "intermediate": 1.0}
_GATE_TOLERANCE = 1e-12

# ----- normalisation -----

_NUMBER = re.compile(r"(?<![\w.])[-+−]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?(?!\w)")
_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
}  # fmt: skip
_WORD_RE = re.compile(r"\b(" + "|".join(_WORDS) + r")\b")


def _canonical_number(token: str) -> str:
    text = token.replace(",", "").replace("−", "-").lstrip("+")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return token
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def normalize_answer(text: str) -> str:
    """Normalise an answer for exact-match comparison.

    Lowercase; number words zero..twenty become digits; numbers are standardised
    (``1,000`` → ``1000``, ``3.50`` → ``3.5``, ``+2`` → ``2``, ``-0`` → ``0``, a leading
    minus is kept); every other punctuation character (Unicode category P*) is removed;
    whitespace is collapsed. ``"The answer: 3.0."`` → ``"the answer 3"``.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _WORD_RE.sub(lambda m: str(_WORDS[m.group(1)]), text)
    pieces: list[str] = []
    last = 0
    for m in _NUMBER.finditer(text):
        pieces.append(_strip_punct(text[last : m.start()]))
        pieces.append(f" {_canonical_number(m.group(0))} ")
        last = m.end()
    pieces.append(_strip_punct(text[last:]))
    return " ".join("".join(pieces).split())


def _strip_punct(text: str) -> str:
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


def majority_vote(answers: list[str]) -> str:
    """The most common normalised non-empty answer (ties: the one seen first); '' when none."""
    normalised = [normalize_answer(a) for a in answers if a]
    normalised = [a for a in normalised if a]
    if not normalised:
        return ""
    counts = Counter(normalised)
    best = max(counts.values())
    return next(a for a in normalised if counts[a] == best)


def exact_match(answer: str, gold: str) -> bool | None:
    """The default judge: normalised equality; None (unparseable) when the answer normalises to ''."""
    norm = normalize_answer(answer)
    if not norm:
        return None
    return norm == normalize_answer(gold)


# ----- the breakdown -----


@dataclass(frozen=True, eq=False)
class RewardBreakdown(Mapping[str, float]):
    """A reward split into its parts; also a read-only mapping of ``format``/``final``/``intermediate``/``total``.

    The parts are unweighted; ``total`` is ``Σ weights[part] · part``. The remaining
    fields explain how the parts were reached.
    """

    format: float
    final: float
    intermediate: float
    total: float
    format_valid: bool = False
    final_correct: bool | None = None
    gate_open: bool = False
    n_intermediate: int = 0
    correct_intermediate: int = 0
    first_steps: tuple[int | None, ...] = ()
    problems: tuple[str, ...] = ()
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    _KEYS = ("format", "final", "intermediate", "total")

    def __getitem__(self, key: str) -> float:
        if key not in self._KEYS:
            raise KeyError(key)
        value: float = getattr(self, key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def __eq__(self, other: object) -> bool:
        """Equal to another breakdown with the same fields, or to a mapping with the same four values."""
        if isinstance(other, RewardBreakdown):
            return self.__dict__ == other.__dict__
        if isinstance(other, Mapping):
            return dict(self) == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def as_dict(self) -> dict[str, float]:
        """``{"format", "final", "intermediate", "total"}`` as a plain dict."""
        return {k: self[k] for k in self._KEYS}


# ----- the parts -----


def format_reward(response: str) -> tuple[float, list[str]]:
    """(+1 or −1, the problems found): +1 exactly when the tags open, close and alternate properly."""
    report = parse_response(response)
    return (FORMAT_OK if report.ok else FORMAT_BAD), list(report.problems)


def split_answers(response: str) -> tuple[list[str], str | None]:
    """(intermediate answers, final answer): the closed ``<answer>`` blocks before the last, and the last."""
    answers = parse_response(response).answers
    if not answers:
        return [], None
    return answers[:-1], answers[-1]


def final_reward(final: str | None, gold_final: str, *, judge: Judge | None = None) -> tuple[float, bool | None]:
    """(+2 / −1.5 / −2, correct?) for a final answer; ``correct`` is None when unparseable."""
    if final is None:
        return FINAL_UNPARSEABLE, None
    verdict = (judge or exact_match)(final, gold_final)
    if verdict is None:
        return FINAL_UNPARSEABLE, None
    return (FINAL_CORRECT, True) if verdict else (FINAL_WRONG, False)


def first_steps(intermediate: list[str], gold_intermediate: list[str]) -> list[int | None]:
    """``k_j`` for each gold intermediate answer: 1-based index of the first block equal to it (None: never)."""
    blocks = [normalize_answer(a) for a in intermediate]
    steps: list[int | None] = []
    for gold in gold_intermediate:
        g = normalize_answer(gold)
        steps.append(next((k for k, b in enumerate(blocks, 1) if g and b == g), None))
    return steps


def intermediate_reward(
    intermediate: list[str], gold_intermediate: list[str], *, variant: Variant = "time_discounted"
) -> tuple[float, list[int | None]]:
    """(the ungated intermediate reward under ``variant``, ``k_j`` per gold answer)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    steps = first_steps(intermediate, gold_intermediate)
    m = len(gold_intermediate)  # N - 1
    if m == 0:
        return 0.0, steps
    correct = [k for k in steps if k is not None]
    all_correct = len(correct) == m
    if variant == "all_or_none":
        return (INTERMEDIATE_BASE if all_correct else 0.0), steps
    if variant == "partial":
        return INTERMEDIATE_BASE / m * len(correct), steps
    if all_correct:
        return INTERMEDIATE_BASE, steps
    return INTERMEDIATE_BASE / m * sum(1.0 / k for k in correct), steps


def gate_open(
    format_valid: bool,
    final_correct: bool | None,
    batch_acc: float | None,
    prev_batch_acc: float | None,
    eps: float = 0.05,
) -> bool:
    """Whether the intermediate reward is paid: valid format, correct final answer and no accuracy drop beyond ``eps``.

    The accuracy condition is ``batch_acc ≥ prev_batch_acc − eps`` (with a 1e-12 tolerance
    for float rounding); it holds whenever either accuracy is None.
    """
    if not format_valid or final_correct is not True:
        return False
    if batch_acc is None or prev_batch_acc is None:
        return True
    return batch_acc + _GATE_TOLERANCE >= prev_batch_acc - eps


def _weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    merged = dict(DEFAULT_WEIGHTS)
    if weights:
        unknown = set(weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown reward weights {sorted(unknown)}; use format, final, intermediate")
        merged.update({k: float(v) for k, v in weights.items()})
    return merged


def interleaved_reward(
    response: str,
    gold_intermediate: list[str],
    gold_final: str,
    *,
    variant: Variant = "time_discounted",
    batch_acc: float | None = None,
    prev_batch_acc: float | None = None,
    eps: float = 0.05,
    weights: dict[str, float] | None = None,
    judge: Judge | None = None,
) -> RewardBreakdown:
    """The interleaved-reasoning reward of one response, as a breakdown (see the module doc).

    Args:
        response: the model's full response text.
        gold_intermediate: the gold intermediate answers (``N−1`` of them).
        gold_final: the gold final answer.
        variant: ``time_discounted`` (default), ``partial`` or ``all_or_none``.
        batch_acc: this batch's accuracy, for the gate (None: no condition).
        prev_batch_acc: the previous batch's accuracy (None: no condition).
        eps: how far the accuracy may drop before the gate closes.
        weights: λ per part (``format``, ``final``, ``intermediate``; missing ones are 1).
        judge: optional final-answer judge ``(answer, gold) -> True/False/None(unparseable)``;
            default: exact match after ``normalize_answer``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    lam = _weights(weights)
    report = parse_response(response)
    valid = report.ok
    fmt = FORMAT_OK if valid else FORMAT_BAD
    answers = report.answers
    intermediate, final = (answers[:-1], answers[-1]) if answers else ([], None)
    final_value, correct = (0.0, None)
    if valid:
        final_value, correct = final_reward(final, gold_final, judge=judge)
    inter_value, steps = intermediate_reward(intermediate, gold_intermediate, variant=variant)
    is_open = gate_open(valid, correct, batch_acc, prev_batch_acc, eps)
    if not is_open:
        inter_value = 0.0
    total = lam["format"] * fmt + lam["final"] * final_value + lam["intermediate"] * inter_value
    return RewardBreakdown(
        format=fmt,
        final=final_value,
        intermediate=inter_value,
        total=total,
        format_valid=valid,
        final_correct=correct,
        gate_open=is_open,
        n_intermediate=len(intermediate),
        correct_intermediate=sum(1 for k in steps if k is not None),
        first_steps=tuple(steps),
        problems=tuple(report.problems),
        weights=lam,
    )
