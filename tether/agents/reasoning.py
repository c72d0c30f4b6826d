"""Reasoning modes of the agent graph: ``plain``, ``interleaved``, ``think-answer``.

A mode adds an instruction to the system prompt, parses each streamed model turn
(emitting intermediate answers the moment an ``</answer>`` closes), extracts the final
answer of a turn, and computes per-episode metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tether.errors import UserError


@dataclass
class ParseReport:
    """What a stream parser saw in one response.

    ``answers``: every closed answer, in order; ``problems``: one sentence per defect
    (empty when the response is well formed); ``first_answer_char``: offset of the first
    answer character in the response (None when no answer closed).
    """

    answers: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    first_answer_char: int | None = None


class StreamParser(Protocol):
    """Incremental parser of one model turn."""

    def feed(self, delta: str) -> list[str]:
        """Consume text; return the answers whose closing tag arrived in this delta."""
        ...

    def close(self) -> ParseReport:
        """End of the turn: the full report, problems included."""
        ...


class ReasoningMode(Protocol):
    """One way of reasoning and answering."""

    name: str

    def instruction(self) -> str:
        """Text appended to the system prompt ('' for none)."""
        ...

    def parser(self) -> StreamParser:
        """A fresh parser for one model turn."""
        ...

    def final_answer(self, text: str) -> str | None:
        """The final answer carried by a turn's text (None when it has none)."""
        ...

    def metrics(
        self,
        response: str,
        token_count: int,
        first_answer_ms: float | None,
        *,
        token_ids: Sequence[int] | None = None,
        decode: Callable[[list[int]], str] | None = None,
    ) -> dict[str, float]:
        """Per-episode metrics for the final response.

        ``token_ids`` (the sampled ids of ``response``) with ``decode`` (ids -> text) let a
        mode also measure positions in tokens.
        """
        ...


class _NullParser:
    def feed(self, delta: str) -> list[str]:
        return []

    def close(self) -> ParseReport:
        return ParseReport()


class PlainMode:
    """No tags: the text of a turn without tool calls is the answer."""

    name = "plain"

    def instruction(self) -> str:
        return ""

    def parser(self) -> StreamParser:
        return _NullParser()

    def final_answer(self, text: str) -> str | None:
        return text.strip()

    def metrics(
        self,
        response: str,
        token_count: int,
        first_answer_ms: float | None,
        *,
        token_ids: Sequence[int] | None = None,
        decode: Callable[[list[int]], str] | None = None,
    ) -> dict[str, float]:
        return {}


MODES: dict[str, str] = {
    "plain": "tether.agents.reasoning:PlainMode",
    "interleaved": "tether.agents.interleaved:InterleavedMode",
    "think-answer": "tether.agents.interleaved:ThinkAnswerMode",
}


def get_reasoning_mode(name: str) -> ReasoningMode:
    """The reasoning mode called ``name``; ``UserError`` if unknown."""
    import importlib

    target = MODES.get(name)
    if target is None:
        raise UserError(f"Unknown reasoning mode {name!r}; choose one of {', '.join(MODES)}.")
    module_name, _, attr = target.partition(":")
    mode: ReasoningMode = getattr(importlib.import_module(module_name), attr)()
    return mode
