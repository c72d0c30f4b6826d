"""The ``calc`` suite: arithmetic with four tools and ``finish``.

The smallest end-to-end suite: generated expressions like ``12*7-5`` whose gold value
is computed by Python, tools ``add``/``sub``/``mul``/``div`` and a terminal ``finish``.
Reward ``correct`` is 1 when the final answer equals the gold value (1e-6 relative).
"""

from __future__ import annotations

import ast
import operator
import random
import re
from typing import Any

from tether.errors import ToolError
from tether.suites.base import RewardFn, Suite
from tether.tools.base import ToolSet, tool
from tether.types import Episode, Task

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


class CalcTools(ToolSet):
    """Four arithmetic tools and ``finish``."""

    name = "calc"

    @tool
    async def add(self, a: float, b: float) -> float:
        """Add two numbers.

        Args:
            a: the first number
            b: the second number
        """
        return a + b

    @tool
    async def sub(self, a: float, b: float) -> float:
        """Subtract b from a.

        Args:
            a: the number to subtract from
            b: the number to subtract
        """
        return a - b

    @tool
    async def mul(self, a: float, b: float) -> float:
        """Multiply two numbers.

        Args:
            a: the first factor
            b: the second factor
        """
        return a * b

    @tool
    async def div(self, a: float, b: float) -> float:
        """Divide a by b.

        Args:
            a: the dividend
            b: the divisor (not zero)
        """
        if b == 0:
            raise ToolError("division by zero: b must not be 0.")
        return a / b

    @tool(terminal=True)
    async def finish(self, answer: float) -> float:
        """Give the final answer and end the task.

        Args:
            answer: the final numeric answer
        """
        return answer


def parse_number(text: str | None) -> float | None:
    """The last number in ``text`` (None if there is none)."""
    if text is None:
        return None
    found = _NUMBER.findall(text.replace(",", ""))
    return float(found[-1]) if found else None


_OPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate(expr: str) -> float:
    """Evaluate an arithmetic expression of numbers, + - * / and parentheses (nothing else)."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](walk(node.left), walk(node.right)))
        raise ValueError(f"not an arithmetic expression: {expr!r}")

    return walk(ast.parse(expr, mode="eval").body)


def _expression(rng: random.Random) -> str:
    ops = ["+", "-", "*"]
    n_ops = rng.choice([1, 2, 2, 3])
    parts = [str(rng.randint(2, 30))]
    for _ in range(n_ops):
        parts += [rng.choice(ops), str(rng.randint(2, 20))]
    return "".join(parts)


def correct(task: Task, episode: Episode) -> float:
    """1.0 when the final answer equals the gold value, else 0.0."""
    if task.gold is None:
        raise ValueError("task has no gold answer")
    got = parse_number(episode.final_answer)
    gold = float(task.gold)
    return float(got is not None and abs(got - gold) <= 1e-6 * max(1.0, abs(gold)))


class CalcSuite(Suite):
    """Arithmetic word problems solved with calculator tools."""

    name = "calc"
    description = "arithmetic with add/sub/mul/div tools and finish"

    def tasks(self, *, n: int | None = None, seed: int = 0, split: str = "test") -> list[Task]:
        """``n`` expressions (default 100), deterministic per seed and split."""
        rng = random.Random(f"calc:{split}:{seed}")
        out = []
        for i in range(n if n is not None else 100):
            expr = _expression(rng)
            out.append(
                Task(
                    id=f"calc-{split}-{seed}-{i}",
                    suite=self.name,
                    prompt=f"What is {expr}?",
                    gold=evaluate(expr),
                    metadata={"expression": expr},
                )
            )
        return out

    def task(self, task_id: str) -> Task:
        """Tasks ids encode split, seed and position: ``calc-SPLIT-SEED-I``."""
        m = re.fullmatch(r"calc-(\w+)-(\d+)-(\d+)", task_id)
        if m is None:
            raise KeyError(task_id)
        split, seed, i = m.group(1), int(m.group(2)), int(m.group(3))
        return self.tasks(n=i + 1, seed=seed, split=split)[i]

    def task_from_prompt(self, prompt: str) -> Task:
        """A task from a prompt; the gold value is computed when the prompt is a plain expression."""
        gold: Any = None
        expr = prompt.strip().rstrip("?").removeprefix("What is").strip()
        try:
            gold = evaluate(expr)
        except (SyntaxError, ValueError, ZeroDivisionError):
            gold = None
        return Task(id="prompt", suite=self.name, prompt=prompt, gold=gold)

    def toolset(self, task: Task) -> ToolSet:
        """A fresh calculator."""
        return CalcTools()

    def system_prompt(self, task: Task) -> str:
        """Ask for tool use and a final ``finish`` call."""
        return (
            "You are a careful calculator. Solve the arithmetic question step by step with the tools, "
            "one tool call per turn, then call finish with the final number."
        )

    def rewards(self) -> dict[str, tuple[float, RewardFn]]:
        """``correct`` (weight 1)."""
        return {"correct": (1.0, correct)}

    def score(self, task: Task, episode: Episode) -> tuple[dict[str, float | None], dict[str, str]]:
        """No rewards for ad-hoc prompts without a gold value."""
        if task.gold is None:
            return {}, {}
        return super().score(task, episode)

    def summarize(self, episodes: list[Episode]) -> dict[str, Any]:
        """Accuracy over scored episodes."""
        scored = [e.rewards.get("correct") for e in episodes if e.rewards.get("correct") is not None]
        return {"accuracy": (sum(v or 0.0 for v in scored) / len(scored)) if scored else None}
