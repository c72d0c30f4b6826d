"""``InMemoryStore``: the fake ``TrajectoryStore`` (same semantics as ``SqlStore``, nothing on disk).

Everything stored or returned is a deep copy, so callers can mutate their objects freely.
Several stores can share one ``MemoryData`` to act like two connections to one database.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tether.errors import StoreError
from tether.store.codec import to_utc
from tether.store.saver import PendingWrites
from tether.types import Episode, Run, Step

_FINISH_FIELDS = (
    "status",
    "final_answer",
    "rewards",
    "reward_errors",
    "metrics",
    "error",
    "finished_at",
    "duration_ms",
)


@dataclass
class MemoryData:
    """The tables of an in-memory store."""

    runs: dict[str, Run] = field(default_factory=dict)
    episodes: dict[str, Episode] = field(default_factory=dict)  # steps kept apart, below
    steps: dict[str, dict[int, Step]] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, dict[str, float]]]] = field(default_factory=dict)
    #: LangGraph checkpoints: (thread_id, ns) -> the newest checkpoint row, and
    #: -> {(checkpoint_id, task_id, idx): pending-write row}
    checkpoints: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    checkpoint_writes: dict[tuple[str, str], dict[tuple[str, str, int], dict[str, Any]]] = field(
        default_factory=dict
    )


def _utc(value: datetime | None) -> datetime | None:
    return to_utc(value) if value is not None else None


def _utc_episode(ep: Episode, **update: Any) -> Episode:
    """A deep copy with its datetimes in UTC (as the SQL store returns them)."""
    update.update(created_at=to_utc(ep.created_at), finished_at=_utc(ep.finished_at))
    return ep.model_copy(update=update, deep=True)


class InMemoryStore:
    """The in-memory ``TrajectoryStore``."""

    def __init__(self, data: MemoryData | None = None) -> None:
        self.url = "memory://"
        self.data = data if data is not None else MemoryData()
        self._closed = False

    def _check(self, what: str) -> None:
        if self._closed:
            raise StoreError(f"Cannot {what}: the store is closed.")

    async def create_run(self, run: Run) -> None:
        """Insert a run (idempotent on id)."""
        self._check(f"create run {run.id}")
        self.data.runs.setdefault(run.id, run.model_copy(update={"created_at": to_utc(run.created_at)}, deep=True))

    async def get_run(self, run_id: str) -> Run | None:
        """The run, or None."""
        self._check(f"read run {run_id}")
        run = self.data.runs.get(run_id)
        return run.model_copy(deep=True) if run is not None else None

    async def list_runs(self, *, kind: str | None = None, limit: int | None = None) -> list[Run]:
        """Runs, newest first."""
        self._check("list runs")
        found = [r for r in self.data.runs.values() if kind is None or r.kind == kind]
        found.sort(key=lambda r: (to_utc(r.created_at), r.id), reverse=True)
        return [r.model_copy(deep=True) for r in found[:limit]]

    async def start_episode(self, episode: Episode) -> None:
        """Insert the episode (idempotent on id); its steps are written by ``add_step``."""
        self._check(f"start episode {episode.id}")
        if episode.id not in self.data.episodes:
            # rewards are written by finish_episode
            self.data.episodes[episode.id] = _utc_episode(episode, steps=[], rewards={}, reward_errors={})
            self.data.steps[episode.id] = {}

    async def add_step(self, episode_id: str, step: Step) -> None:
        """Append one step. ``StoreError`` for an unknown episode or a taken index."""
        self._add_step(episode_id, step)

    def add_step_deferred(self, episode_id: str, step: Step) -> asyncio.Future[None]:
        """``add_step`` done now; the returned future holds its outcome (as ``SqlStore``'s does)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self._add_step(episode_id, step)
        except StoreError as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(None)
        return fut

    def _add_step(self, episode_id: str, step: Step) -> None:
        self._check(f"add step {step.index} to episode {episode_id}")
        if episode_id not in self.data.episodes:
            raise StoreError(f"Cannot add step {step.index}: episode {episode_id} was not started in this store.")
        taken = self.data.steps[episode_id]
        if step.index in taken:
            raise StoreError(
                f"Cannot add step {step.index} to episode {episode_id}: it already has a step {step.index}."
            )
        taken[step.index] = step.model_copy(update={"started_at": to_utc(step.started_at)}, deep=True)

    async def delete_steps_from(self, episode_id: str, index: int) -> None:
        """Delete the steps of an episode whose index is ``index`` or more (when resuming an episode)."""
        self._check(f"delete steps of episode {episode_id}")
        taken = self.data.steps.get(episode_id, {})
        for i in [i for i in taken if i >= index]:
            del taken[i]

    async def finish_episode(self, episode: Episode) -> None:
        """Update status, final answer, rewards, metrics, error and timings (inserts the episode if missing)."""
        self._check(f"finish episode {episode.id}")
        current = self.data.episodes.get(episode.id)
        if current is None:
            self.data.episodes[episode.id] = _utc_episode(episode, steps=[])
            self.data.steps[episode.id] = {}
            return
        # model_copy does not copy ``update`` values: copy them, so the caller's objects stay theirs
        update = {name: copy.deepcopy(getattr(episode, name)) for name in _FINISH_FIELDS}
        update["finished_at"] = _utc(episode.finished_at)
        self.data.episodes[episode.id] = current.model_copy(update=update, deep=True)

    def _full(self, ep: Episode, with_steps: bool) -> Episode:
        steps = [s.model_copy(deep=True) for _, s in sorted(self.data.steps[ep.id].items())] if with_steps else []
        return ep.model_copy(update={"steps": steps}, deep=True)

    async def get_episode(self, episode_id: str, *, with_steps: bool = True) -> Episode | None:
        """The episode (steps ordered by index), or None."""
        self._check(f"read episode {episode_id}")
        ep = self.data.episodes.get(episode_id)
        return self._full(ep, with_steps) if ep is not None else None

    async def list_episodes(
        self,
        *,
        run_id: str | None = None,
        suite: str | None = None,
        status: str | None = None,
        policy_version: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        with_steps: bool = False,
    ) -> list[Episode]:
        """Episodes matching every given filter (``since <= created_at < until``), oldest first."""
        self._check("list episodes")

        def keep(e: Episode) -> bool:
            created = to_utc(e.created_at)
            return (
                (run_id is None or e.run_id == run_id)
                and (suite is None or e.suite == suite)
                and (status is None or e.status == status)
                and (policy_version is None or e.policy_version == policy_version)
                and (since is None or created >= to_utc(since))
                and (until is None or created < to_utc(until))
            )

        found = sorted(filter(keep, self.data.episodes.values()), key=lambda e: (to_utc(e.created_at), e.id))
        return [self._full(e, with_steps) for e in found[:limit]]

    async def add_metrics(self, run_id: str, step: int, metrics: dict[str, float]) -> None:
        """Store training metrics for ``step`` of a run (several calls for one step are merged)."""
        self._check(f"add metrics of step {step} to run {run_id}")
        self.data.metrics.setdefault(run_id, []).append((step, dict(metrics)))

    async def get_metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Training metrics of a run ordered by step; rows of the same step are merged in write order."""
        self._check(f"read metrics of run {run_id}")
        merged: dict[int, dict[str, Any]] = {}
        for step, metrics in sorted(self.data.metrics.get(run_id, []), key=lambda x: x[0]):
            merged.setdefault(step, {"step": step}).update(metrics)
        return list(merged.values())

    # ----- LangGraph checkpoints (``tether.store.saver``): the newest of each thread -----

    async def put_checkpoint(self, row: dict[str, Any]) -> None:
        """Make ``row`` the thread's checkpoint and drop writes made after any other checkpoint."""
        self._check(f"store checkpoint {row['checkpoint_id']} of {row['thread_id']}")
        key = (row["thread_id"], row["checkpoint_ns"])
        self.data.checkpoints[key] = dict(row)
        writes = self.data.checkpoint_writes.get(key, {})
        for wkey in [k for k, w in writes.items() if w["checkpoint_id"] != row["checkpoint_id"]]:
            del writes[wkey]

    async def put_checkpoint_writes(self, writes: PendingWrites) -> None:
        """Store a task's pending writes (existing slots kept, or overwritten when ``writes.replace``)."""
        self._check("store checkpoint writes")
        replace = writes.replace
        for row in writes.rows():
            stored = self.data.checkpoint_writes.setdefault((row["thread_id"], row["checkpoint_ns"]), {})
            key = (row["checkpoint_id"], row["task_id"], row["idx"])
            if replace or key not in stored:
                stored[key] = dict(row)

    async def delete_checkpoints(self, thread_id: str) -> None:
        """Delete the checkpoint and pending writes of a thread."""
        self._check(f"delete the checkpoints of {thread_id}")
        for table in (self.data.checkpoints, self.data.checkpoint_writes):
            for key in [k for k in table if k[0] == thread_id]:
                del table[key]

    def _record(self, key: tuple[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        row = self.data.checkpoints[key]
        writes = self.data.checkpoint_writes.get(key, {}).values()
        return dict(row), [dict(w) for w in writes if w["checkpoint_id"] == row["checkpoint_id"]]

    async def get_checkpoint(
        self, thread_id: str, ns: str, checkpoint_id: str | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The thread's checkpoint (if ``checkpoint_id`` is None or its id) and its pending writes, or None."""
        self._check(f"read the checkpoint of {thread_id}")
        row = self.data.checkpoints.get((thread_id, ns))
        if row is None or (checkpoint_id is not None and row["checkpoint_id"] != checkpoint_id):
            return None
        return self._record((thread_id, ns))

    async def list_checkpoints(
        self, thread_id: str | None, ns: str | None, *, before: str | None = None, limit: int | None = None
    ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Checkpoints newest first with their writes (None for thread or namespace matches any)."""
        self._check("list checkpoints")
        keys = [
            k
            for k, row in self.data.checkpoints.items()
            if (thread_id is None or k[0] == thread_id)
            and (ns is None or k[1] == ns)
            and (before is None or row["checkpoint_id"] < before)
        ]
        keys.sort(key=lambda k: self.data.checkpoints[k]["checkpoint_id"], reverse=True)
        return [self._record(k) for k in keys[:limit]]

    async def close(self) -> None:
        """Mark the store closed (the data stays with its ``MemoryData``)."""
        self._closed = True

    async def __aenter__(self) -> InMemoryStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return "InMemoryStore()"
