"""Task suites: tasks + the tool set they need + the verifier that scores them.

A suite lives in one place (e.g. ``tether/suites/calc.py`` or next to its tool set,
``tether/tools/indata/suite.py``) and registers by name in ``tether.suites.SUITES``.
Rewards are plain functions ``(task, episode) -> float`` (a rubric), weighted into
``total``; a reward function that raises is recorded as an error, never as 0.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from tether.tools.base import ToolSet
from tether.types import Episode, Task

RewardFn = Callable[[Task, Episode], float]


class Suite(ABC):
    """A task suite. Subclasses set ``name`` and implement ``tasks``, ``toolset`` and ``rewards``."""

    name: str = ""
    description: str = ""
    #: whether a turn with no tool call ends the episode with its text as the answer
    plain_answer_ends: bool = True

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def tasks(self, *, n: int | None = None, seed: int = 0, split: str = "test") -> list[Task]:
        """Up to ``n`` tasks of ``split``, deterministic for a ``seed``."""

    def task(self, task_id: str) -> Task:
        """The task with id ``task_id``; raises ``KeyError`` if there is none."""
        for t in self.tasks(n=None):
            if t.id == task_id:
                return t
        raise KeyError(task_id)

    def task_from_prompt(self, prompt: str) -> Task:
        """An ad-hoc task from a person's prompt (no gold answer)."""
        return Task(id="prompt", suite=self.name, prompt=prompt)

    @abstractmethod
    def toolset(self, task: Task) -> ToolSet:
        """A fresh tool set for one episode of ``task`` (entered with ``async with``)."""

    def system_prompt(self, task: Task) -> str:
        """Instructions for the model, before the tool schemas."""
        return "You are a helpful assistant that solves tasks with tools."

    def rewards(self) -> dict[str, tuple[float, RewardFn]]:
        """Named reward functions with their weight in ``total``."""
        return {}

    def summarize(self, episodes: list[Episode]) -> dict[str, Any]:
        """Suite-specific eval figures (e.g. accuracy per level); generic figures are added by eval."""
        return {}

    def score(self, task: Task, episode: Episode) -> tuple[dict[str, float | None], dict[str, str]]:
        """Run every reward function: (values, errors). ``total`` is the weighted sum, None on any error."""
        values: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        total = 0.0
        for name, (weight, fn) in self.rewards().items():
            try:
                value = float(fn(task, episode))
            except Exception as exc:  # a failing reward is an error, never 0
                errors[name] = f"{type(exc).__name__}: {exc}"
                values[name] = None
                continue
            values[name] = value
            total += weight * value
        if values and "total" not in values:
            values["total"] = None if errors else total
        return values, errors
