"""The tagged reasoning modes: ``interleaved`` and its ``think-answer`` baseline.

Interleaved reasoning (Xie et al., "Interleaved Reasoning for Large Language Models via
Reinforcement Learning", arXiv 2505.19640) alternates ``<think>…</think>`` and
``<answer>…</answer>`` so that intermediate answers reach the user while the model keeps
reasoning; the last ``<answer>`` block is the final answer. ``think-answer`` is the usual
one-think-then-one-answer format the paper compares against.

Both modes share the streaming parser of ``tether.agents.tags``; see ``docs/reasoning.md``
for the metrics they store per episode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tether.agents.tags import TagParser, TagReport, parse_response

#: the paper's instruction for interleaved reasoning (its Table 1 template)
INTERLEAVED_INSTRUCTION = (
    "You reason through problems step by step before providing an answer. "
    "You conduct your reasoning within <think></think> and share partial answers within "
    "<answer></answer> as soon as you become confident about the intermediate results. "
    "You continue this pattern of <think></think><answer></answer><think></think><answer></answer> "
    "until you reach the final answer."
)

#: the think-answer baseline: one reasoning block, then one answer block
THINK_ANSWER_INSTRUCTION = (
    "You first think about the reasoning process in the mind and then provide the user with the answer. "
    "The reasoning process and answer are enclosed within <think></think> and <answer></answer> tags, "
    "respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>."
)

Decode = Callable[[list[int]], str]


def token_position(token_ids: Sequence[int], decode: Decode, char_pos: int) -> int:
    """The 0-based index of the token that holds character ``char_pos`` of ``decode(token_ids)``.

    Binary search over prefix decodes: the smallest ``k`` with
    ``len(decode(token_ids[:k + 1])) > char_pos``; ``len(token_ids)`` when there is none.
    """
    lo, hi = 0, len(token_ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(decode(list(token_ids[: mid + 1]))) > char_pos:
            hi = mid
        else:
            lo = mid + 1
    return lo


def answer_metrics(
    report: TagReport,
    *,
    token_count: int = 0,
    first_answer_ms: float | None = None,
    token_ids: Sequence[int] | None = None,
    decode: Decode | None = None,
) -> dict[str, float]:
    """Per-episode metrics of a parsed final response (see ``TaggedMode.metrics``)."""
    n_answers = len(report.answers)
    length = report.length
    first = report.first_answer_char
    metrics: dict[str, float] = {
        "ttfa_fraction": 1.0 if first is None or length == 0 else first / length,
        "n_answers": float(n_answers),
        "n_intermediate": float(max(n_answers - 1, 0)),
        "format_error": 0.0 if report.ok else 1.0,
        "n_format_problems": float(len(report.problems)),
    }
    if token_ids is not None and decode is not None and len(token_ids) > 0:
        pos = len(token_ids) if first is None else token_position(token_ids, decode, first)
        metrics["ttfa_token_fraction"] = min(pos / len(token_ids), 1.0)
    if first_answer_ms is not None:
        metrics["ttfa_ms"] = float(first_answer_ms)
    return metrics


class TaggedMode:
    """Shared behaviour of the ``<think>``/``<answer>`` modes."""

    name = "tagged"
    expect_pairs: int | None = None
    _instruction = ""

    def instruction(self) -> str:
        """The text appended to the system prompt."""
        return self._instruction

    def parser(self) -> TagParser:
        """A fresh streaming parser for one model turn."""
        return TagParser(expect_pairs=self.expect_pairs)

    def parse(self, text: str) -> TagReport:
        """Parse a whole turn."""
        return parse_response(text, expect_pairs=self.expect_pairs)

    def final_answer(self, text: str) -> str | None:
        """The last closed ``<answer>`` block of ``text`` (stripped); None when there is none."""
        answers = self.parse(text).answers
        return answers[-1] if answers else None

    def metrics(
        self,
        response: str,
        token_count: int,
        first_answer_ms: float | None,
        *,
        token_ids: Sequence[int] | None = None,
        decode: Decode | None = None,
    ) -> dict[str, float]:
        """Metrics of the episode's final response.

        * ``ttfa_fraction``: the paper's time to first answer, on characters: offset of the
          first non-whitespace character inside the first closed ``<answer>`` divided by the
          response length (1.0 when no answer closed);
        * ``ttfa_token_fraction`` (only with ``token_ids`` and ``decode``): the same on tokens,
          index of the token holding that character divided by the number of tokens;
        * ``ttfa_ms`` (only when given): wall-clock ms from the episode start to the first
          closed ``</answer>`` while streaming;
        * ``n_answers`` / ``n_intermediate``: answer blocks in the response / those before
          the final one;
        * ``format_error`` (1.0 when the parser reported any problem), ``n_format_problems``.
        """
        return answer_metrics(
            self.parse(response),
            token_count=token_count,
            first_answer_ms=first_answer_ms,
            token_ids=token_ids,
            decode=decode,
        )


class InterleavedMode(TaggedMode):
    """Alternate ``<think>`` and ``<answer>``; share partial answers as soon as confident."""

    name = "interleaved"
    _instruction = INTERLEAVED_INSTRUCTION


class ThinkAnswerMode(TaggedMode):
    """The baseline: one ``<think>`` block, then one ``<answer>`` block."""

    name = "think-answer"
    expect_pairs = 1
    _instruction = THINK_ANSWER_INSTRUCTION
