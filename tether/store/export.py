"""Export the episodes of a run to JSONL or Parquet.

JSONL (``fmt="jsonl"``): one episode per line, with its steps, as the ``Episode`` JSON
(``Episode.model_validate_json(line)`` reads it back exactly; non-finite floats such as
``-inf`` logprobs or NaN metrics are written as ``-Infinity`` / ``NaN``).

Parquet (``fmt="parquet"``) writes two files:

- ``PATH``: one row per **step**, episode columns denormalised (see ``STEP_SCHEMA``);
  token ids / logprobs / loss mask are list columns, messages and tool calls/results JSON text.
- ``PATH`` with ``.episodes`` before the suffix (``run.parquet`` -> ``run.episodes.parquet``):
  one row per **episode** (see ``EPISODE_SCHEMA``), so episodes without steps are not lost.

Every file is written to a temporary name in the same directory and renamed at the end,
so a failure leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from tether.errors import UserError
from tether.store.base import TrajectoryStore
from tether.types import Episode

Format = Literal["jsonl", "parquet"]
_CHUNK = 64  # episodes per Parquet row group

_EPISODE_FIELDS = [
    pa.field("episode_id", pa.string(), nullable=False),
    pa.field("run_id", pa.string()),
    pa.field("suite", pa.string()),
    pa.field("task_id", pa.string()),
    pa.field("model", pa.string()),
    pa.field("episode_policy_version", pa.int64()),
    pa.field("status", pa.string()),
    pa.field("final_answer", pa.string()),
    pa.field("reward", pa.float64()),
    pa.field("episode_created_at", pa.timestamp("us", tz="UTC")),
    pa.field("episode_finished_at", pa.timestamp("us", tz="UTC")),
    pa.field("episode_duration_ms", pa.float64()),
]

#: one row per step of the run
STEP_SCHEMA = pa.schema(
    _EPISODE_FIELDS
    + [
        pa.field("step_index", pa.int64(), nullable=False),
        pa.field("role", pa.string()),
        pa.field("text", pa.string()),
        pa.field("messages", pa.string()),
        pa.field("tool_calls", pa.string()),
        pa.field("tool_results", pa.string()),
        pa.field("token_ids", pa.list_(pa.int64())),
        pa.field("logprobs", pa.list_(pa.float64())),
        pa.field("loss_mask", pa.list_(pa.int8())),
        pa.field("prompt_token_ids", pa.list_(pa.int64())),
        pa.field("policy_version", pa.int64()),
        pa.field("started_at", pa.timestamp("us", tz="UTC")),
        pa.field("duration_ms", pa.float64()),
    ]
)

#: one row per episode of the run
EPISODE_SCHEMA = pa.schema(
    [
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string()),
        pa.field("suite", pa.string()),
        pa.field("task_id", pa.string()),
        pa.field("task", pa.string()),
        pa.field("model", pa.string()),
        pa.field("policy_version", pa.int64()),
        pa.field("status", pa.string()),
        pa.field("final_answer", pa.string()),
        pa.field("reward", pa.float64()),
        pa.field("rewards", pa.map_(pa.string(), pa.float64())),
        pa.field("reward_errors", pa.map_(pa.string(), pa.string())),
        pa.field("metrics", pa.map_(pa.string(), pa.float64())),
        pa.field("error", pa.string()),
        pa.field("n_steps", pa.int64()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("finished_at", pa.timestamp("us", tz="UTC")),
        pa.field("duration_ms", pa.float64()),
    ]
)


def episodes_path(path: str | Path) -> Path:
    """The per-episode Parquet file written beside the per-step file ``path``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.episodes{p.suffix or '.parquet'}")


def _episode_json(ep: Episode) -> str:
    return json.dumps(ep.model_dump(mode="json"), ensure_ascii=False, allow_nan=True)


def _json_list(items: list[Any]) -> str | None:
    return json.dumps([i.model_dump(mode="json") for i in items], ensure_ascii=False, allow_nan=True) if items else None


def _episode_cols(ep: Episode) -> dict[str, Any]:
    return {
        "episode_id": ep.id,
        "run_id": ep.run_id,
        "suite": ep.suite,
        "task_id": ep.task_id,
        "model": ep.model,
        "episode_policy_version": ep.policy_version,
        "status": ep.status,
        "final_answer": ep.final_answer,
        "reward": ep.reward,
        "episode_created_at": ep.created_at,
        "episode_finished_at": ep.finished_at,
        "episode_duration_ms": ep.duration_ms,
    }


def step_rows(ep: Episode) -> list[dict[str, Any]]:
    """The rows of ``STEP_SCHEMA`` for one episode."""
    head = _episode_cols(ep)
    return [
        {
            **head,
            "step_index": s.index,
            "role": s.role,
            "text": s.text,
            "messages": _json_list(s.messages),
            "tool_calls": _json_list(s.tool_calls),
            "tool_results": _json_list(s.tool_results),
            "token_ids": s.token_ids,
            "logprobs": s.logprobs,
            "loss_mask": s.loss_mask,
            "prompt_token_ids": s.prompt_token_ids,
            "policy_version": s.policy_version,
            "started_at": s.started_at,
            "duration_ms": s.duration_ms,
        }
        for s in ep.steps
    ]


def episode_row(ep: Episode) -> dict[str, Any]:
    """The row of ``EPISODE_SCHEMA`` for one episode."""
    return {
        "episode_id": ep.id,
        "run_id": ep.run_id,
        "suite": ep.suite,
        "task_id": ep.task_id,
        "task": ep.task.model_dump_json() if ep.task is not None else None,
        "model": ep.model,
        "policy_version": ep.policy_version,
        "status": ep.status,
        "final_answer": ep.final_answer,
        "reward": ep.reward,
        "rewards": list(ep.rewards.items()),
        "reward_errors": list(ep.reward_errors.items()),
        "metrics": list(ep.metrics.items()),
        "error": ep.error,
        "n_steps": len(ep.steps),
        "created_at": ep.created_at,
        "finished_at": ep.finished_at,
        "duration_ms": ep.duration_ms,
    }


async def _episodes(store: TrajectoryStore, run_id: str) -> AsyncIterator[Episode]:
    for head in await store.list_episodes(run_id=run_id):
        ep = await store.get_episode(head.id, with_steps=True)
        if ep is not None:
            yield ep


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


async def export_run(store: TrajectoryStore, run_id: str, path: str | Path, fmt: Format = "jsonl") -> int:
    """Write every episode of ``run_id`` (oldest first) to ``path``; returns the number of episodes.

    ``UserError`` for an unknown run, an unknown format or a missing directory.
    """
    if fmt not in ("jsonl", "parquet"):
        raise UserError(f"Unknown export format {fmt!r}: use jsonl or parquet.")
    out = Path(path)
    if not out.parent.is_dir():
        raise UserError(f"Cannot export to {out}: the directory {out.parent} does not exist.")
    if out.is_dir():
        raise UserError(f"Cannot export to {out}: it is a directory.")
    heads = await store.list_episodes(run_id=run_id, limit=1)
    if not heads and await store.get_run(run_id) is None:
        raise UserError(f"There is no run {run_id!r} in the store at {store.url}.")
    targets = [out] if fmt == "jsonl" else [out, episodes_path(out)]
    temps = [_tmp(t) for t in targets]
    try:
        n = await (_write_jsonl(store, run_id, temps[0]) if fmt == "jsonl" else _write_parquet(store, run_id, *temps))
        for tmp, target in zip(temps, targets, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return n


async def _write_jsonl(store: TrajectoryStore, run_id: str, tmp: Path) -> int:
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        async for ep in _episodes(store, run_id):
            f.write(_episode_json(ep) + "\n")
            n += 1
        f.flush()
        os.fsync(f.fileno())
    return n


async def _write_parquet(store: TrajectoryStore, run_id: str, steps_tmp: Path, episodes_tmp: Path) -> int:
    n = 0
    with pq.ParquetWriter(steps_tmp, STEP_SCHEMA) as sw, pq.ParquetWriter(episodes_tmp, EPISODE_SCHEMA) as ew:
        chunk: list[Episode] = []

        def flush() -> None:
            rows = [r for ep in chunk for r in step_rows(ep)]
            if rows:
                sw.write_table(pa.Table.from_pylist(rows, schema=STEP_SCHEMA))
            ew.write_table(pa.Table.from_pylist([episode_row(ep) for ep in chunk], schema=EPISODE_SCHEMA))
            chunk.clear()

        async for ep in _episodes(store, run_id):
            chunk.append(ep)
            n += 1
            if len(chunk) >= _CHUNK:
                flush()
        if chunk:
            flush()
    return n


def load_jsonl(path: str | Path) -> list[Episode]:
    """Read a JSONL export back into episodes."""
    with Path(path).open(encoding="utf-8") as f:
        return [Episode.model_validate_json(line) for line in f if line.strip()]
