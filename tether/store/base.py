"""The ``TrajectoryStore`` seam: where runs, episodes, steps, rewards and training metrics live.

Backends: SQLAlchemy (SQLite file by default, PostgreSQL by URL) and an in-memory fake.
All pass ``tether.store.conformance``. ``add_step`` returns only once the step is
committed, so killing the process loses at most the step in flight.

Errors: ``tether.errors.StoreError`` for an unusable URL or a failed database.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from tether.types import Episode, Run, Step


@runtime_checkable
class TrajectoryStore(Protocol):
    """Async persistence of trajectories."""

    url: str

    async def create_run(self, run: Run) -> None:
        """Insert a run (idempotent on id)."""
        ...

    async def get_run(self, run_id: str) -> Run | None:
        """The run, or None."""
        ...

    async def list_runs(self, *, kind: str | None = None, limit: int | None = None) -> list[Run]:
        """Runs, newest first."""
        ...

    async def start_episode(self, episode: Episode) -> None:
        """Insert an episode row (status ``running``) with its task; steps are not written here."""
        ...

    async def add_step(self, episode_id: str, step: Step) -> None:
        """Append one step and commit it before returning."""
        ...

    def add_step_deferred(self, episode_id: str, step: Step) -> asyncio.Future[None]:
        """Queue a step to commit with the next write that waits (soon in any case); the future
        resolves once it is committed, or fails with ``StoreError``."""
        ...

    async def delete_steps_from(self, episode_id: str, index: int) -> None:
        """Delete the steps of an episode whose index is ``index`` or more (resuming drops the step in flight)."""
        ...

    async def finish_episode(self, episode: Episode) -> None:
        """Update status, final answer, rewards, metrics, error and timings of an episode."""
        ...

    async def get_episode(self, episode_id: str, *, with_steps: bool = True) -> Episode | None:
        """The episode (steps ordered by index), or None."""
        ...

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
        """Episodes matching every given filter, oldest first."""
        ...

    async def add_metrics(self, run_id: str, step: int, metrics: dict[str, float]) -> None:
        """Store training metrics for ``step`` of a run."""
        ...

    async def get_metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Training metrics of a run, ordered by step; each dict holds ``step`` and the metrics."""
        ...

    async def close(self) -> None:
        """Close connections."""
        ...
