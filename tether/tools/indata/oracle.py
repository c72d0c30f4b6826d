"""The scripted InData oracle: a ``ChatModel`` that calls the tools along each question's plan.

It knows no gold answers: it reads the results of its earlier calls from the conversation
(the tool messages) and fills ``{"$ref": [step, key, ...]}`` references in later
arguments, so its answers are exactly what the tools computed. It must score 100% on
every level; anything less is a bug in the generator or the tools.

Plans are found by the task prompt: ``InDataSuite.tasks()`` registers every plan it
makes in ``PLANS`` (process-wide), or pass ``plans`` / ``tasks`` explicitly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from tether.errors import ModelError, ToolError
from tether.models.base import stream_by_generate
from tether.tools.base import ToolSet
from tether.tools.calls import format_tool_call
from tether.types import Completion, Message, SamplingParams, Task, ToolCall

#: prompt -> plan, filled by ``InDataSuite.tasks()``
PLANS: dict[str, list[dict[str, Any]]] = {}


def resolve(obj: Any, results: list[Any]) -> Any:
    """Fill plan references from earlier results.

    ``{"$ref": [i, k...]}`` -> ``results[i][k]...``; ``{"$column": [i, j]}`` -> column j of the
    rows of result i; ``{"$sub": [a, b]}`` -> a - b; ``{"$argmax": [[label, x], ...]}`` -> the label of the
    largest x.
    """
    if isinstance(obj, list):
        return [resolve(x, results) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "$ref" in obj:
        step, *path = obj["$ref"]
        value = results[step]
        for key in path:
            value = value[key]
        return value
    if "$column" in obj:
        step, j = obj["$column"]
        return [row[j] for row in results[step]["rows"]]
    if "$sub" in obj:
        a, b = (resolve(x, results) for x in obj["$sub"])
        return a - b
    if "$argmax" in obj:
        pairs = [(label, resolve(x, results)) for label, x in obj["$argmax"]]
        return max(pairs, key=lambda p: p[1])[0]
    return {k: resolve(v, results) for k, v in obj.items()}


class OracleModel:
    """A ``ChatModel`` that follows the registered plan of the task in the conversation."""

    def __init__(self, plans: dict[str, list[dict[str, Any]]] | None = None, tasks: Iterable[Task] = ()) -> None:
        self.name = "indata-oracle"
        self.policy_version = 0
        self.plans = dict(plans or {})
        for t in tasks:
            if "oracle_plan" in t.metadata:
                self.plans[t.prompt] = t.metadata["oracle_plan"]

    def _plan(self, messages: list[Message]) -> list[dict[str, Any]]:
        user = next((m.content for m in messages if m.role == "user"), None)
        if user is None:
            raise ModelError("the oracle needs a user message holding the task prompt")
        for table in (self.plans, PLANS):
            if user in table:
                return table[user]
        for table in (self.plans, PLANS):
            for prompt, plan in table.items():
                if prompt in user:
                    return plan
        raise ModelError("the oracle has no plan for this task (generate it with InDataSuite.tasks first)")

    async def generate(self, messages: list[Message], params: SamplingParams, **_: Any) -> Completion:
        """The next planned tool call, with references filled from the earlier tool results."""
        plan = self._plan(messages)
        start = max((i for i, m in enumerate(messages) if m.role == "user"), default=0)
        results: list[Any] = []
        for m in messages[start + 1 :]:
            if m.role != "tool":
                continue
            if m.content.startswith("ToolError"):
                raise ModelError(f"oracle call {len(results) + 1} failed: {m.content}")
            try:
                results.append(json.loads(m.content))
            except json.JSONDecodeError:
                results.append(m.content)
        if len(results) >= len(plan):
            raise ModelError("the oracle's plan is finished but the episode did not end")
        step = plan[len(results)]
        text = format_tool_call(step["tool"], resolve(step["args"], results))
        ids = list(text.encode("utf-8"))
        return Completion(text=text, token_ids=ids, logprobs=[0.0] * len(ids), model=self.name)

    def stream(self, messages: list[Message], params: SamplingParams, **_: Any) -> AsyncIterator[str | Completion]:
        """One delta (the whole call), then the completion."""
        return stream_by_generate(self, messages, params)

    async def aclose(self) -> None:
        """Nothing to release."""


async def run_plan(toolset: ToolSet, plan: list[dict[str, Any]]) -> tuple[str | None, list[Any]]:
    """Drive ``toolset`` along ``plan``: (final answer text, results); ``ToolError`` on a failed call."""
    results: list[Any] = []
    for step in plan:
        call = ToolCall(name=step["tool"], arguments=resolve(step["args"], results))
        res = await toolset.call(call)
        if res.is_error:
            raise ToolError(f"plan step {len(results)} ({step['tool']}) failed: {res.content}")
        if toolset.get(call.name).terminal:
            return res.content, results
        results.append(json.loads(res.content))
    return None, results


def from_spec(rest: str = "", **_: Any) -> OracleModel:
    """``load_model("oracle")``: an oracle over the process-wide plan registry."""
    return OracleModel()
