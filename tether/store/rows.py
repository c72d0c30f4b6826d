"""Rows of the store's tables <-> tether's pydantic types (pure functions, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pydantic_core
from pydantic import TypeAdapter

from tether.store.codec import loads, pack_floats, pack_ints, unpack_floats, unpack_ints
from tether.types import Episode, Message, Run, Step, Task, ToolCall, ToolResult

_MESSAGES = TypeAdapter(list[Message])
_CALLS = TypeAdapter(list[ToolCall])
_RESULTS = TypeAdapter(list[ToolResult])


def to_json(value: Any) -> str:
    """JSON text (NaN/inf kept; pydantic-known types such as datetimes converted)."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=True, default=pydantic_core.to_jsonable_python
    )


# ----- row <-> model -----


def run_row(run: Run) -> dict[str, Any]:
    """The ``runs`` row of a run."""
    return {
        "id": run.id,
        "kind": run.kind,
        "suite": run.suite,
        "model": run.model,
        "config": to_json(run.config),
        "created_at": run.created_at,
    }


def episode_row(ep: Episode) -> dict[str, Any]:
    """The ``episodes`` row of an episode (steps and rewards live in their own tables)."""
    return {
        "id": ep.id,
        "run_id": ep.run_id,
        "suite": ep.suite,
        "task_id": ep.task_id,
        "task": ep.task.model_dump_json() if ep.task is not None else None,
        "model": ep.model,
        "policy_version": ep.policy_version,
        "status": ep.status,
        "final_answer": ep.final_answer,
        "metrics": to_json(ep.metrics),
        "error": ep.error,
        "created_at": ep.created_at,
        "finished_at": ep.finished_at,
        "duration_ms": ep.duration_ms,
    }


def reward_rows(ep: Episode) -> list[dict[str, Any]]:
    """One ``rewards`` row per name in ``rewards`` or ``reward_errors``."""
    names = list(ep.rewards) + [n for n in ep.reward_errors if n not in ep.rewards]
    return [
        {
            "episode_id": ep.id,
            "name": n,
            "value": ep.rewards.get(n),
            "error": ep.reward_errors.get(n),
            "scored": n in ep.rewards,
        }
        for n in names
    ]


def step_row(episode_id: str, step: Step) -> dict[str, Any]:
    """The ``steps`` row of a step: arrays packed, structured fields as JSON (NULL when empty)."""
    return {
        "episode_id": episode_id,
        "index": step.index,
        "role": step.role,
        "text": step.text,
        "messages": _MESSAGES.dump_json(step.messages).decode() if step.messages else None,
        "tool_calls": _CALLS.dump_json(step.tool_calls).decode() if step.tool_calls else None,
        "tool_results": _RESULTS.dump_json(step.tool_results).decode() if step.tool_results else None,
        "token_ids": pack_ints(step.token_ids),
        "logprobs": pack_floats(step.logprobs),
        "loss_mask": pack_ints(step.loss_mask),
        "prompt_token_ids": pack_ints(step.prompt_token_ids),
        "policy_version": step.policy_version,
        "started_at": step.started_at,
        "duration_ms": step.duration_ms,
    }


def row_to_step(r: Any) -> Step:
    """Inverse of ``step_row``."""
    m = r._mapping
    return Step(
        index=m["index"],
        role=m["role"],
        text=m["text"],
        messages=_MESSAGES.validate_json(m["messages"]) if m["messages"] else [],
        tool_calls=_CALLS.validate_json(m["tool_calls"]) if m["tool_calls"] else [],
        tool_results=_RESULTS.validate_json(m["tool_results"]) if m["tool_results"] else [],
        token_ids=unpack_ints(m["token_ids"]),
        logprobs=unpack_floats(m["logprobs"]),
        loss_mask=unpack_ints(m["loss_mask"]),
        prompt_token_ids=unpack_ints(m["prompt_token_ids"]),
        policy_version=m["policy_version"],
        started_at=m["started_at"],
        duration_ms=m["duration_ms"],
    )


def row_to_episode(r: Any, reward_list: Sequence[Any], step_list: list[Step]) -> Episode:
    """Build an ``Episode`` from its row, its reward rows and its steps."""
    m = r._mapping
    return Episode(
        id=m["id"],
        run_id=m["run_id"],
        suite=m["suite"],
        task_id=m["task_id"],
        model=m["model"],
        policy_version=m["policy_version"],
        status=m["status"],
        final_answer=m["final_answer"],
        rewards={w.name: w.value for w in reward_list if w.scored},
        reward_errors={w.name: w.error for w in reward_list if w.error is not None},
        metrics=loads(m["metrics"]),
        error=m["error"],
        task=Task.model_validate_json(m["task"]) if m["task"] is not None else None,
        steps=step_list,
        created_at=m["created_at"],
        finished_at=m["finished_at"],
        duration_ms=m["duration_ms"],
    )


def row_to_run(r: Any) -> Run:
    """Build a ``Run`` from its row."""
    m = r._mapping
    return Run(
        id=m["id"],
        kind=m["kind"],
        suite=m["suite"],
        model=m["model"],
        config=loads(m["config"]),
        created_at=m["created_at"],
    )
