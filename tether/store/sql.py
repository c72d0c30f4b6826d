"""``SqlStore``: the SQLAlchemy trajectory store for SQLite and PostgreSQL.

Writes go through one background **group-commit writer**: every write call puts an
operation on a queue and awaits a future; the writer takes everything queued, applies it
in one transaction (one ``executemany`` per statement kind), commits, then resolves the
futures. So ``add_step`` returns only once its step is committed, yet hundreds of
concurrent episodes share one commit instead of queueing for one each. If a batch
fails, its operations are retried one by one so that only the bad one fails.

Reads use their own connections and see every committed write. How statements reach
each database (asyncpg for PostgreSQL, the stdlib driver in the loop for SQLite) is in
``tether.store.engines``. A store belongs to the event loop that opened it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from tether.errors import StoreError
from tether.store.codec import loads
from tether.store.engines import Executor, PostgresExecutor, SqliteExecutor
from tether.store.rows import (
    episode_row,
    reward_rows,
    row_to_episode,
    row_to_run,
    row_to_step,
    run_row,
    step_row,
    to_json,
)
from tether.store.tables import episodes, rewards, runs, steps, train_metrics
from tether.store.urls import display_url, normalize_url
from tether.types import Episode, Run, Step, utcnow

T = TypeVar("T")
_RUN, _START, _STEP, _FINISH, _METRICS, _DELETE = range(6)
_STOP = object()
#: columns ``finish_episode`` overwrites on an existing row
_FINISH_COLUMNS = ("status", "final_answer", "metrics", "error", "finished_at", "duration_ms")
_CHUNK = 500  # ids per IN (...) when reading steps/rewards of many episodes
_HEAVY_LIMIT = 200  # list_episodes above this many rows (or with steps) reads off the loop on SQLite


def _reason(exc: BaseException) -> str:
    """The first line of a driver error, without a trailing period."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if isinstance(orig, ConnectionRefusedError) or "Connect call failed" in text:
        text = "connection refused"
    return text.rstrip(".")


@dataclass(slots=True)
class _Op:
    kind: int
    payload: Any
    future: asyncio.Future[None]
    what: str  # for error messages: "add step 3 to episode abc"


class SqlStore:
    """The SQL ``TrajectoryStore``. Build it with ``await SqlStore.open(url)`` (or ``tether.store.open_store``)."""

    def __init__(self, url: str, *, max_batch: int = 1000) -> None:
        backend, self.url = normalize_url(url)
        if backend == "memory":
            raise StoreError("SqlStore needs a SQLite or PostgreSQL URL; use InMemoryStore for memory://.")
        self.backend = backend
        self.display_url = display_url(self.url)
        self.max_batch = max_batch
        self._db: Executor
        if backend == "sqlite":
            self._db = SqliteExecutor(self.url)
            ins: Any = sqlite_dialect.insert
        else:
            self._db = PostgresExecutor(self.url)
            ins = pg_dialect.insert
        self._ins_run = ins(runs).on_conflict_do_nothing(index_elements=["id"])
        self._ins_start = ins(episodes).on_conflict_do_nothing(index_elements=["id"])
        upsert = ins(episodes)
        self._upsert_finish = upsert.on_conflict_do_update(
            index_elements=["id"], set_={c: upsert.excluded[c] for c in _FINISH_COLUMNS}
        )
        self._ins_step = sa.insert(steps)
        self._del_rewards = sa.delete(rewards).where(rewards.c.episode_id.in_(sa.bindparam("ids", expanding=True)))
        self._ins_rewards = sa.insert(rewards)
        self._ins_metrics = sa.insert(train_metrics)
        self._del_steps = sa.delete(steps).where(
            steps.c.episode_id == sa.bindparam("eid"), steps.c.index >= sa.bindparam("start")
        )
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        #: number of committed write transactions and of operations they held (for benchmarks)
        self.commits = 0
        self.committed_ops = 0

    @classmethod
    async def open(cls, url: str, **options: Any) -> SqlStore:
        """Connect, run the migrations to head and start the writer; ``StoreError`` if that fails."""
        store = cls(url, **options)
        try:
            await store._db.migrate()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await store._db.close()
            raise StoreError(f"Cannot open the database at {store.display_url}: {_reason(exc)}.") from exc
        store._writer = asyncio.get_running_loop().create_task(store._write_loop(), name="tether-store-writer")
        return store

    # ----- writes -----

    async def _submit(self, kind: int, payload: Any, what: str) -> None:
        if self._closed or self._writer is None or self._writer.done():
            raise StoreError(f"Cannot {what}: the store is closed.")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Op(kind, payload, fut, what))
        await fut

    async def create_run(self, run: Run) -> None:
        """Insert a run (idempotent on id)."""
        await self._submit(_RUN, run_row(run), f"create run {run.id}")

    async def start_episode(self, episode: Episode) -> None:
        """Insert the episode row (idempotent on id); its steps are written by ``add_step``."""
        await self._submit(_START, episode_row(episode), f"start episode {episode.id}")

    async def add_step(self, episode_id: str, step: Step) -> None:
        """Append one step; returns once it is committed. ``StoreError`` for an unknown episode or a taken index."""
        await self._submit(_STEP, step_row(episode_id, step), f"add step {step.index} to episode {episode_id}")

    async def finish_episode(self, episode: Episode) -> None:
        """Update status, final answer, rewards, metrics, error and timings (inserts the row if it is missing)."""
        await self._submit(_FINISH, (episode_row(episode), reward_rows(episode)), f"finish episode {episode.id}")

    async def add_metrics(self, run_id: str, step: int, metrics: dict[str, float]) -> None:
        """Store training metrics for ``step`` of a run (several calls for one step are merged)."""
        row = {"run_id": run_id, "step": step, "metrics": to_json(metrics), "created_at": utcnow()}
        await self._submit(_METRICS, row, f"add metrics of step {step} to run {run_id}")

    async def delete_steps_from(self, episode_id: str, index: int) -> None:
        """Delete the steps of an episode whose index is ``index`` or more (when resuming an episode)."""
        await self._submit(_DELETE, {"eid": episode_id, "start": index}, f"delete steps of episode {episode_id}")

    async def _write_loop(self) -> None:
        carry: Any = None
        batch: list[_Op] = []
        try:
            while True:
                item = carry if carry is not None else await self._queue.get()
                carry = None
                if item is _STOP:
                    return
                batch = [item]
                # a delete is a barrier: it commits alone, so every write keeps its order around it
                while item.kind != _DELETE and len(batch) < self.max_batch and not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is _STOP or item.kind == _DELETE:
                        carry = item
                        break
                    batch.append(item)
                await self._commit(batch)
                batch = []
        except BaseException as exc:  # never leave a caller waiting forever
            self._fail_pending(exc, batch + ([carry] if isinstance(carry, _Op) else []))
            raise

    def _fail_pending(self, exc: BaseException, batch: list[_Op]) -> None:
        for op in batch:
            if not op.future.done():
                op.future.set_exception(StoreError(f"Cannot {op.what}: the store writer stopped ({exc!r})."))
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _Op) and not item.future.done():
                item.future.set_exception(StoreError(f"Cannot {item.what}: the store writer stopped ({exc!r})."))

    async def _commit(self, batch: list[_Op]) -> None:
        try:
            await self._db.write(lambda conn: self._apply(conn, batch))
        except Exception as exc:
            if len(batch) == 1:
                op = batch[0]
                if not op.future.done():
                    op.future.set_exception(self._write_error(op, exc))
                return
            for op in batch:  # find the bad one(s): the others still commit
                await self._commit([op])
            return
        self.commits += 1
        self.committed_ops += len(batch)
        for op in batch:
            if not op.future.done():
                op.future.set_result(None)

    def _apply(self, conn: Connection, batch: list[_Op]) -> None:
        by_kind: dict[int, list[Any]] = {}
        for op in batch:
            by_kind.setdefault(op.kind, []).append(op.payload)
        if _DELETE in by_kind:
            conn.execute(self._del_steps, by_kind[_DELETE])
        if _RUN in by_kind:
            conn.execute(self._ins_run, by_kind[_RUN])
        if _START in by_kind:
            conn.execute(self._ins_start, by_kind[_START])
        if _STEP in by_kind:
            conn.execute(self._ins_step, by_kind[_STEP])
        if _FINISH in by_kind:
            last: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
            for row, rws in by_kind[_FINISH]:
                last[row["id"]] = (row, rws)  # the latest finish of an episode wins
            conn.execute(self._upsert_finish, [row for row, _ in last.values()])
            conn.execute(self._del_rewards, {"ids": list(last)})
            reward_list = [r for _, rws in last.values() for r in rws]
            if reward_list:
                conn.execute(self._ins_rewards, reward_list)
        if _METRICS in by_kind:
            conn.execute(self._ins_metrics, by_kind[_METRICS])

    def _write_error(self, op: _Op, exc: Exception) -> StoreError:
        text = _reason(exc)
        low = text.lower()
        if op.kind == _STEP and isinstance(exc, sa.exc.IntegrityError):
            eid, index = op.payload["episode_id"], op.payload["index"]
            if "foreign key" in low:
                return StoreError(f"Cannot add step {index}: episode {eid} was not started in this store.")
            if "unique" in low or "duplicate" in low:
                return StoreError(f"Cannot add step {index} to episode {eid}: it already has a step {index}.")
        return StoreError(f"Cannot {op.what} in {self.display_url}: {text}.")

    # ----- reads -----

    async def _read(self, what: str, fn: Callable[[Connection], T], *, heavy: bool = False) -> T:
        if self._closed:
            raise StoreError(f"Cannot {what}: the store is closed.")
        try:
            return await self._db.read(fn, heavy=heavy)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"Cannot {what} from {self.display_url}: {_reason(exc)}.") from exc

    async def get_run(self, run_id: str) -> Run | None:
        """The run, or None."""

        def q(conn: Connection) -> Run | None:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
            return row_to_run(row) if row is not None else None

        return await self._read(f"read run {run_id}", q)

    async def list_runs(self, *, kind: str | None = None, limit: int | None = None) -> list[Run]:
        """Runs, newest first."""
        stmt = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.id.desc())
        if kind is not None:
            stmt = stmt.where(runs.c.kind == kind)
        if limit is not None:
            stmt = stmt.limit(limit)
        return await self._read("list runs", lambda conn: [row_to_run(r) for r in conn.execute(stmt).all()])

    async def get_episode(self, episode_id: str, *, with_steps: bool = True) -> Episode | None:
        """The episode (steps ordered by index, rewards filled in), or None."""

        def q(conn: Connection) -> Episode | None:
            row = conn.execute(sa.select(episodes).where(episodes.c.id == episode_id)).first()
            return self._assemble(conn, [row], with_steps)[0] if row is not None else None

        return await self._read(f"read episode {episode_id}", q)

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
        c = episodes.c
        stmt = sa.select(episodes).order_by(c.created_at, c.id)
        filters = ((c.run_id, run_id), (c.suite, suite), (c.status, status), (c.policy_version, policy_version))
        for col, value in filters:
            if value is not None:
                stmt = stmt.where(col == value)
        if since is not None:
            stmt = stmt.where(c.created_at >= since)
        if until is not None:
            stmt = stmt.where(c.created_at < until)
        if limit is not None:
            stmt = stmt.limit(limit)
        heavy = with_steps or limit is None or limit > _HEAVY_LIMIT
        return await self._read(
            "list episodes", lambda conn: self._assemble(conn, conn.execute(stmt).all(), with_steps), heavy=heavy
        )

    def _assemble(self, conn: Connection, rows: Sequence[Any], with_steps: bool) -> list[Episode]:
        ids = [r.id for r in rows]
        reward_map: dict[str, list[Any]] = {i: [] for i in ids}
        step_map: dict[str, list[Step]] = {i: [] for i in ids}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            for w in conn.execute(sa.select(rewards).where(rewards.c.episode_id.in_(chunk))).all():
                reward_map[w.episode_id].append(w)
            if with_steps:
                sq = sa.select(steps).where(steps.c.episode_id.in_(chunk)).order_by(steps.c.episode_id, steps.c.index)
                for s in conn.execute(sq).all():
                    step_map[s.episode_id].append(row_to_step(s))
        return [row_to_episode(r, reward_map[r.id], step_map[r.id]) for r in rows]

    async def get_metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Training metrics of a run ordered by step; rows of the same step are merged in write order."""
        stmt = (
            sa.select(train_metrics.c.step, train_metrics.c.metrics)
            .where(train_metrics.c.run_id == run_id)
            .order_by(train_metrics.c.step, train_metrics.c.id)
        )

        def q(conn: Connection) -> list[dict[str, Any]]:
            merged: dict[int, dict[str, Any]] = {}
            for step, text in conn.execute(stmt).all():
                merged.setdefault(step, {"step": step}).update(loads(text))
            return list(merged.values())

        return await self._read(f"read metrics of run {run_id}", q)

    # ----- lifecycle -----

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close the connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None and not self._writer.done():
            self._queue.put_nowait(_STOP)
            with contextlib.suppress(Exception):
                await self._writer
        await self._db.close()

    async def __aenter__(self) -> SqlStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"SqlStore({self.display_url!r})"
