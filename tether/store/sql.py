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
import collections
import contextlib
import sqlite3
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
from tether.store.saver import PendingWrites
from tether.store.sqlite_statements import SqliteStatement
from tether.store.tables import (
    episodes,
    lg_checkpoint_writes,
    lg_checkpoints,
    rewards,
    runs,
    steps,
    train_metrics,
)
from tether.store.urls import display_url, normalize_url
from tether.types import Episode, Run, Step, utcnow

T = TypeVar("T")
_RUN, _START, _STEP, _FINISH, _METRICS, _DELETE, _CKPT, _CKPT_WRITES, _CKPT_DELETE = range(9)
#: operations that split a batch, so every write keeps its order around them
_BARRIERS = (_DELETE, _CKPT_DELETE)
#: columns ``finish_episode`` overwrites on an existing row
_FINISH_COLUMNS = ("status", "final_answer", "metrics", "error", "finished_at", "duration_ms")
#: columns a newer checkpoint of a thread overwrites (the store keeps one checkpoint per thread)
_CKPT_COLUMNS = ("checkpoint_id", "parent_checkpoint_id", "type", "checkpoint", "metadata_type", "metadata")
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

    def __init__(self, url: str, *, max_batch: int = 1000, defer_s: float = 0.002) -> None:
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
        upsert = ins(episodes)
        ckpt = ins(lg_checkpoints)
        writes = ins(lg_checkpoint_writes)
        w = lg_checkpoint_writes.c
        #: every write statement, by name; ``_apply`` runs them with lists of row dicts
        self._statements: dict[str, Any] = {
            "run": ins(runs).on_conflict_do_nothing(index_elements=["id"]),
            "start": ins(episodes).on_conflict_do_nothing(index_elements=["id"]),
            "step": sa.insert(steps),
            "finish": upsert.on_conflict_do_update(
                index_elements=["id"], set_={c: upsert.excluded[c] for c in _FINISH_COLUMNS}
            ),
            "delete_rewards": sa.delete(rewards).where(rewards.c.episode_id == sa.bindparam("eid")),
            "insert_rewards": sa.insert(rewards),
            "metrics": sa.insert(train_metrics),
            "delete_steps": sa.delete(steps).where(
                steps.c.episode_id == sa.bindparam("eid"), steps.c.index >= sa.bindparam("start")
            ),
            "checkpoint": ckpt.on_conflict_do_update(
                index_elements=["thread_id", "checkpoint_ns"],
                set_={c: ckpt.excluded[c] for c in _CKPT_COLUMNS},
            ),
            "delete_stale_writes": sa.delete(lg_checkpoint_writes).where(
                w.thread_id == sa.bindparam("tid"),
                w.checkpoint_ns == sa.bindparam("ns"),
                w.checkpoint_id != sa.bindparam("cid"),
            ),
            "checkpoint_writes": writes.on_conflict_do_nothing(),
            "replace_checkpoint_writes": writes.on_conflict_do_update(
                index_elements=[c.name for c in lg_checkpoint_writes.primary_key.columns],
                set_={c: writes.excluded[c] for c in ("task_path", "channel", "type", "value")},
            ),
            "delete_checkpoint_writes": sa.delete(lg_checkpoint_writes).where(w.thread_id == sa.bindparam("tid")),
            "delete_checkpoints": sa.delete(lg_checkpoints).where(lg_checkpoints.c.thread_id == sa.bindparam("tid")),
        }
        self._sqlite: dict[str, SqliteStatement] = {}
        if backend == "sqlite":
            self._sqlite = self._compile_sqlite()
        #: queued operations, in order; ``_wake`` tells the writer to commit them
        self._ops: collections.deque[_Op] = collections.deque()
        self._wake = asyncio.Event()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._writer_busy = False  # the writer is committing (it may await a worker thread)
        self._inline_used = False  # an inline commit happened in this loop iteration
        #: commit inline while writes come one at a time (see ``_commit_inline``)
        self._inline_allowed = True
        #: how long a deferred operation may wait for a write that commits it
        self.defer_s = defer_s
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        #: number of committed write transactions and of operations they held (for benchmarks)
        self.commits = 0
        self.committed_ops = 0

    def _compile_sqlite(self) -> dict[str, SqliteStatement]:
        """The write statements as raw SQLite SQL (see ``tether.store.sqlite_statements``):
        inserts take every column but an autoincrement id, other statements their bind parameters."""
        compiled = {}
        for name, stmt in self._statements.items():
            if isinstance(stmt, sa.Insert):
                keys = [c.name for c in stmt.table.columns if c.autoincrement is not True]
            else:
                keys = list(stmt.compile().params)
            compiled[name] = SqliteStatement(stmt, keys)
        return compiled

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

    def _enqueue(self, kind: int, payload: Any, what: str, *, defer: bool = False) -> asyncio.Future[None]:
        if self._closed or self._writer is None or self._writer.done():
            raise StoreError(f"Cannot {what}: the store is closed.")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._ops.append(_Op(kind, payload, fut, what))
        if not defer:
            if not self._commit_inline(loop):
                self._wake.set()
        elif self._flush_timer is None and not self._wake.is_set():
            self._flush_timer = loop.call_later(self.defer_s, self._wake.set)
        return fut

    def _commit_inline(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Commit everything queued right here, in the caller, when that costs no batching.

        SQLite only (its commits run in the loop thread anyway), with the writer idle, at most
        once per loop iteration, and only while the writer's last wake-up found at most one
        operation: one episode at a time then skips the hop to the writer task, while the
        writes of many concurrent episodes pile up for the writer's group commit. Returns
        False (the writer takes over) when it did not commit.
        """
        if not isinstance(self._db, SqliteExecutor):
            return False
        if not self._inline_allowed or self._inline_used or self._writer_busy or self._wake.is_set():
            return False
        self._inline_used = True
        loop.call_soon(self._allow_inline)
        batch = list(self._ops)
        try:
            self._db.write_dbapi_now(lambda conn: self._write_sqlite(conn, batch))
        except Exception:  # locked, or a bad operation: the writer retries, one by one if need be
            return False
        self._ops.clear()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._resolve(batch)
        return True

    def _allow_inline(self) -> None:
        self._inline_used = False

    def _resolve(self, batch: list[_Op]) -> None:
        self.commits += 1
        self.committed_ops += len(batch)
        for op in batch:
            if not op.future.done():
                op.future.set_result(None)

    async def _submit(self, kind: int, payload: Any, what: str) -> None:
        await self._enqueue(kind, payload, what)

    async def create_run(self, run: Run) -> None:
        """Insert a run (idempotent on id)."""
        await self._submit(_RUN, run_row(run), f"create run {run.id}")

    async def start_episode(self, episode: Episode) -> None:
        """Insert the episode row (idempotent on id); its steps are written by ``add_step``."""
        await self._submit(_START, episode_row(episode), f"start episode {episode.id}")

    async def add_step(self, episode_id: str, step: Step) -> None:
        """Append one step; returns once it is committed. ``StoreError`` for an unknown episode or a taken index."""
        await self._submit(_STEP, step_row(episode_id, step), f"add step {step.index} to episode {episode_id}")

    def add_step_deferred(self, episode_id: str, step: Step) -> asyncio.Future[None]:
        """Queue a step to commit with the next write that waits (within ``defer_s`` at the latest).

        Returns a future that resolves once the step is committed (or fails with ``StoreError``).
        The agent graph uses it when a checkpointer runs, so a step and the checkpoint written
        right after it share one transaction.
        """
        return self._enqueue(
            _STEP, step_row(episode_id, step), f"add step {step.index} to episode {episode_id}", defer=True
        )

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

    # ----- LangGraph checkpoints (``tether.store.saver``) -----

    async def put_checkpoint(self, row: dict[str, Any]) -> None:
        """Make ``row`` its thread's checkpoint (the store keeps the newest only) and drop the
        pending writes made after any other checkpoint of the thread; returns once committed."""
        await self._submit(_CKPT, row, f"store checkpoint {row['checkpoint_id']} of {row['thread_id']}")

    async def put_checkpoint_writes(self, writes: PendingWrites) -> None:
        """Store a task's pending writes (existing slots kept, or overwritten when ``writes.replace``).

        Deferred: LangGraph puts the writes of a task just before the checkpoint that follows
        them, so both commit in one transaction (within ``defer_s`` in any case), and writes
        that checkpoint replaces are dropped unserialised.
        """
        await self._enqueue(_CKPT_WRITES, writes, f"store checkpoint writes of {writes.thread_id}", defer=True)

    async def delete_checkpoints(self, thread_id: str) -> None:
        """Delete every checkpoint and pending write of a thread."""
        await self._submit(_CKPT_DELETE, thread_id, f"delete the checkpoints of {thread_id}")

    async def get_checkpoint(
        self, thread_id: str, ns: str, checkpoint_id: str | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The thread's checkpoint (if ``checkpoint_id`` is None or its id) and its pending writes, or None."""
        t = lg_checkpoints.c
        stmt = sa.select(lg_checkpoints).where(t.thread_id == thread_id, t.checkpoint_ns == ns)
        if checkpoint_id is not None:
            stmt = stmt.where(t.checkpoint_id == checkpoint_id)

        def q(conn: Connection) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
            row = conn.execute(stmt).mappings().first()
            return None if row is None else self._with_writes(conn, [dict(row)])[0]

        return await self._read(f"read the checkpoint of {thread_id}", q)

    async def list_checkpoints(
        self, thread_id: str | None, ns: str | None, *, before: str | None = None, limit: int | None = None
    ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Checkpoints newest first with their writes (None for thread or namespace matches any)."""
        t = lg_checkpoints.c
        stmt = sa.select(lg_checkpoints).order_by(t.checkpoint_id.desc())
        if thread_id is not None:
            stmt = stmt.where(t.thread_id == thread_id)
        if ns is not None:
            stmt = stmt.where(t.checkpoint_ns == ns)
        if before is not None:
            stmt = stmt.where(t.checkpoint_id < before)
        if limit is not None:
            stmt = stmt.limit(limit)
        return await self._read(
            "list checkpoints", lambda conn: self._with_writes(conn, [dict(r) for r in conn.execute(stmt).mappings()])
        )

    @staticmethod
    def _with_writes(
        conn: Connection, rows: list[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        w = lg_checkpoint_writes.c
        found: dict[tuple[str, str, str], list[dict[str, Any]]] = {
            (r["thread_id"], r["checkpoint_ns"], r["checkpoint_id"]): [] for r in rows
        }
        threads = sorted({r["thread_id"] for r in rows})
        for start in range(0, len(threads), _CHUNK):
            stmt = sa.select(lg_checkpoint_writes).where(w.thread_id.in_(threads[start : start + _CHUNK]))
            for wr in conn.execute(stmt).mappings():
                key = (wr["thread_id"], wr["checkpoint_ns"], wr["checkpoint_id"])
                if key in found:
                    found[key].append(dict(wr))
        return [(r, found[(r["thread_id"], r["checkpoint_ns"], r["checkpoint_id"])]) for r in rows]

    async def _write_loop(self) -> None:
        batch: list[_Op] = []
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._flush_timer is not None:
                    self._flush_timer.cancel()
                    self._flush_timer = None
                self._writer_busy = True
                taken = 0
                while self._ops:
                    batch = [self._ops.popleft() for _ in range(min(self.max_batch, len(self._ops)))]
                    taken += len(batch)
                    await self._commit(batch)
                    batch = []
                self._writer_busy = False
                # writes of several callers piled up: group commit pays, so stop committing inline
                self._inline_allowed = taken <= 1
                if self._stopping:
                    return
        except BaseException as exc:  # never leave a caller waiting forever
            self._fail_pending(exc, batch)
            raise

    def _fail_pending(self, exc: BaseException, batch: list[_Op]) -> None:
        for op in [*batch, *self._ops]:
            if not op.future.done():
                op.future.set_exception(StoreError(f"Cannot {op.what}: the store writer stopped ({exc!r})."))
        self._ops.clear()

    async def _commit(self, batch: list[_Op]) -> None:
        try:
            if isinstance(self._db, SqliteExecutor):
                await self._db.write_dbapi(lambda conn: self._write_sqlite(conn, batch))
            else:

                def write_sa(conn: Connection) -> None:
                    self._apply(lambda name, rows: conn.execute(self._statements[name], rows), batch)  # type: ignore[arg-type]

                await self._db.write(write_sa)
        except Exception as exc:
            if len(batch) == 1:
                op = batch[0]
                if not op.future.done():
                    op.future.set_exception(self._write_error(op, exc))
                return
            for op in batch:  # find the bad one(s): the others still commit
                await self._commit([op])
            return
        self._resolve(batch)

    def _write_sqlite(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        self._apply(lambda name, rows: self._sqlite[name].run(conn, rows), batch)

    def _apply(self, execute: Callable[[str, list[dict[str, Any]]], None], batch: list[_Op]) -> None:
        """Write ``batch`` in one transaction: ``execute(statement_name, rows)`` runs one statement.

        Operations are grouped by kind (one ``executemany`` each); a delete splits the batch,
        so every write keeps its order around it.
        """
        segment: list[_Op] = []
        for op in batch:
            if op.kind in _BARRIERS:
                self._apply_segment(execute, segment)
                segment = []
                if op.kind == _DELETE:
                    execute("delete_steps", [op.payload])
                else:
                    execute("delete_checkpoint_writes", [{"tid": op.payload}])
                    execute("delete_checkpoints", [{"tid": op.payload}])
            else:
                segment.append(op)
        self._apply_segment(execute, segment)

    def _apply_segment(self, execute: Callable[[str, list[dict[str, Any]]], None], ops: list[_Op]) -> None:
        by_kind: dict[int, list[Any]] = {}
        for op in ops:
            by_kind.setdefault(op.kind, []).append(op.payload)
        for kind, name in ((_RUN, "run"), (_START, "start"), (_STEP, "step")):
            if kind in by_kind:
                execute(name, by_kind[kind])
        if _CKPT in by_kind or _CKPT_WRITES in by_kind:
            self._apply_checkpoints(execute, by_kind.get(_CKPT, []), by_kind.get(_CKPT_WRITES, []))
        if _FINISH in by_kind:
            last: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
            for row, rws in by_kind[_FINISH]:
                last[row["id"]] = (row, rws)  # the latest finish of an episode wins
            execute("finish", [row for row, _ in last.values()])
            execute("delete_rewards", [{"eid": eid} for eid in last])
            reward_list = [r for _, rws in last.values() for r in rws]
            if reward_list:
                execute("insert_rewards", reward_list)
        if _METRICS in by_kind:
            execute("metrics", by_kind[_METRICS])

    @staticmethod
    def _apply_checkpoints(
        execute: Callable[[str, list[dict[str, Any]]], None],
        checkpoints: list[dict[str, Any]],
        writes: list[PendingWrites],
    ) -> None:
        """Keep the newest checkpoint of each thread and only the pending writes of that checkpoint.

        Writes made for an older checkpoint of a thread whose newer checkpoint is in the same
        batch never reach the database (the delete below would remove them anyway).
        """
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for row in checkpoints:  # in put order: the last one of a thread is its newest
            latest[(row["thread_id"], row["checkpoint_ns"])] = row
        if latest:
            execute("checkpoint", list(latest.values()))
            execute(
                "delete_stale_writes",
                [{"tid": t, "ns": ns, "cid": row["checkpoint_id"]} for (t, ns), row in latest.items()],
            )
        for w in writes:
            cp = latest.get((w.thread_id, w.checkpoint_ns))
            if cp is None or cp["checkpoint_id"] == w.checkpoint_id:
                execute("replace_checkpoint_writes" if w.replace else "checkpoint_writes", w.rows())

    def _write_error(self, op: _Op, exc: Exception) -> StoreError:
        text = _reason(exc)
        low = text.lower()
        if op.kind == _STEP and isinstance(exc, (sa.exc.IntegrityError, sqlite3.IntegrityError)):
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
            self._stopping = True
            self._wake.set()
            with contextlib.suppress(Exception):
                await self._writer
        await self._db.close()

    async def __aenter__(self) -> SqlStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"SqlStore({self.display_url!r})"
