"""The ``format`` suite: small sums answered with the bare number — a format-bound task.

Made for the RL demo (``make train-demo``): the untrained SmolLM2-135M usually knows the
sum but wraps it in prose (``"4 + 1 = 5."``, ``"The answer is 5"``); reinforcement from
its own episodes teaches it to reply with just the number, quickly. No tools are offered
(the prompt stays short, so rollouts are cheap on a CPU).

Tasks: ``What is A + B?`` with A, B in 1..``max_operand`` (default 9), deterministic per
split and seed (``train`` and ``test`` draw from different streams). Rewards (``total``
is their weighted sum, in [0, 1]):

* ``correct`` (0.5): the last number in the answer equals A + B;
* ``exact`` (0.5): the answer is exactly that number and nothing else.
"""

from __future__ import annotations

import random
import re
from typing import Any

from tether.suites.base import RewardFn, Suite
from tether.tools.base import ToolSet
from tether.types import Episode, Task

_NUMBER = re.compile(r"-?\d+")


class NoTools(ToolSet):
    """An empty tool set: the answer is the model's plain reply."""

    name = "none"


def _gold(task: Task) -> int:
    if task.gold is None:
        raise ValueError("task has no gold answer")
    return int(task.gold)


def correct(task: Task, episode: Episode) -> float:
    """1.0 when the last number in the final answer equals the gold sum."""
    gold = _gold(task)
    found = _NUMBER.findall(episode.final_answer or "")
    return float(bool(found) and int(found[-1]) == gold)


def exact(task: Task, episode: Episode) -> float:
    """1.0 when the final answer is exactly the gold number (surrounding whitespace aside)."""
    return float((episode.final_answer or "").strip() == str(_gold(task)))


class FormatSuite(Suite):
    """Small sums answered with the bare number."""

    name = "format"
    description = "small sums answered with just the number (format-bound RL demo)"

    def __init__(self, max_operand: int = 9, **options: Any) -> None:
        super().__init__(max_operand=max_operand, **options)
        self.max_operand = int(max_operand)

    def tasks(self, *, n: int | None = None, seed: int = 0, split: str = "test") -> list[Task]:
        """``n`` sums (default 200), deterministic per split and seed."""
        rng = random.Random(f"format:{split}:{seed}")
        out = []
        for i in range(n if n is not None else 200):
            a, b = rng.randint(1, self.max_operand), rng.randint(1, self.max_operand)
            out.append(Task(id=f"format-{split}-{seed}-{i}", suite=self.name, prompt=f"What is {a} + {b}?", gold=a + b))
        return out

    def toolset(self, task: Task) -> ToolSet:
        """No tools."""
        return NoTools()

    def system_prompt(self, task: Task) -> str:
        """Ask for the bare number, with one example."""
        return 'You answer arithmetic questions with just the number. For example, for "What is 2 + 3?" you reply "5".'

    def rewards(self) -> dict[str, tuple[float, RewardFn]]:
        """``correct`` 0.5, ``exact`` 0.5."""
        return {"correct": (0.5, correct), "exact": (0.5, exact)}

    def summarize(self, episodes: list[Episode]) -> dict[str, Any]:
        """Rates of each reward over scored episodes."""
        out: dict[str, Any] = {}
        for key in ("correct", "exact"):
            vals = [e.rewards.get(key) for e in episodes if e.rewards.get(key) is not None]
            out[f"{key}_rate"] = (sum(v or 0.0 for v in vals) / len(vals)) if vals else None
        return out
