"""The ``format`` suite: answer small sums by calling the ``submit`` tool — a format-bound task.

Made for the RL demo (``make train-demo``): the untrained SmolLM2-135M mostly answers in
prose or writes broken calls, yet it can learn quickly to emit the one valid call

    <tool_call>{"name": "submit", "arguments": {"answer": 12}}</tool_call>

Tasks: ``What is A + B?`` with A, B in 1..``max_operand`` (default 9), deterministic per
split and seed (``train`` and ``test`` draw from different streams). Rewards (``total``
is their weighted sum, in [0, 1]):

* ``tagged`` (0.25): the first model turn contains ``<tool_call>``;
* ``submitted`` (0.25): the episode ended through a valid ``submit`` call;
* ``correct`` (0.5): the submitted answer equals A + B.
"""

from __future__ import annotations

import random
from typing import Any

from tether.suites.base import RewardFn, Suite
from tether.tools.base import ToolSet, tool
from tether.tools.calls import OPEN
from tether.types import Episode, Task


class SubmitTools(ToolSet):
    """One terminal tool, ``submit``."""

    name = "format"

    @tool(terminal=True)
    async def submit(self, answer: int) -> int:
        """Submit the final answer and end the task.

        Args:
            answer: the answer, a whole number
        """
        return answer


def _submitted(episode: Episode) -> str | None:
    for step in episode.steps:
        if step.role != "tool":
            continue
        for r in step.tool_results:
            if r.name == "submit" and not r.is_error:
                return r.content
    return None


def tagged(task: Task, episode: Episode) -> float:
    """1.0 when the first model turn contains ``<tool_call>``."""
    turns = episode.model_steps
    return float(bool(turns) and OPEN in turns[0].text)


def submitted(task: Task, episode: Episode) -> float:
    """1.0 when the episode ended through a valid ``submit`` call."""
    return float(_submitted(episode) is not None)


def correct(task: Task, episode: Episode) -> float:
    """1.0 when the submitted answer equals the gold sum."""
    if task.gold is None:
        raise ValueError("task has no gold answer")
    got = _submitted(episode)
    try:
        return float(got is not None and int(float(got)) == int(task.gold))
    except ValueError:
        return 0.0


class FormatSuite(Suite):
    """Small sums answered through a ``submit`` tool call."""

    name = "format"
    description = "small sums answered with one valid submit tool call (RL demo)"

    def __init__(self, max_operand: int = 9, **options: Any) -> None:
        super().__init__(max_operand=max_operand, **options)
        self.max_operand = int(max_operand)

    def tasks(self, *, n: int | None = None, seed: int = 0, split: str = "test") -> list[Task]:
        """``n`` sums (default 200), deterministic per split and seed."""
        rng = random.Random(f"format:{split}:{seed}")
        out = []
        for i in range(n if n is not None else 200):
            a, b = rng.randint(1, self.max_operand), rng.randint(1, self.max_operand)
            out.append(
                Task(id=f"format-{split}-{seed}-{i}", suite=self.name, prompt=f"What is {a} + {b}?", gold=a + b)
            )
        return out

    def toolset(self, task: Task) -> ToolSet:
        """A fresh ``submit`` tool."""
        return SubmitTools()

    def system_prompt(self, task: Task) -> str:
        """The instruction with one worked example of the call."""
        return (
            "Answer the question by calling the submit tool with the number. Example:\n"
            "What is 2 + 3?\n"
            '<tool_call>{"name": "submit", "arguments": {"answer": 5}}</tool_call>'
        )

    def rewards(self) -> dict[str, tuple[float, RewardFn]]:
        """``tagged`` 0.25, ``submitted`` 0.25, ``correct`` 0.5."""
        return {"tagged": (0.25, tagged), "submitted": (0.25, submitted), "correct": (0.5, correct)}

    def summarize(self, episodes: list[Episode]) -> dict[str, Any]:
        """Rates of each reward over scored episodes."""
        out: dict[str, Any] = {}
        for key in ("tagged", "submitted", "correct"):
            vals = [e.rewards.get(key) for e in episodes if e.rewards.get(key) is not None]
            out[f"{key}_rate"] = (sum(v or 0.0 for v in vals) / len(vals)) if vals else None
        return out
