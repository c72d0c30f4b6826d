"""``LoopSqliteSaver``: LangGraph's ``SqliteSaver`` with async methods that run in the event loop.

SQLite calls take microseconds, so they run inline (WAL, ``synchronous=NORMAL``, and the
writes of one loop iteration share one commit). LangGraph's ``AsyncSqliteSaver`` instead
serialises every call through one aiosqlite thread with an fsync per commit. While the
file is locked by another process, calls go to a worker thread, so the loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from langgraph.checkpoint.sqlite import SqliteSaver

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple

T = TypeVar("T")
_LOCK_WAIT_S = 30.0


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _retrying(fn: Callable[[], T]) -> T:
    """Call ``fn`` until the database is no longer locked (at most 30 s); runs in a worker thread."""
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class LoopSqliteSaver(SqliteSaver):
    """``SqliteSaver`` whose async methods run in the event loop (SQLite calls take microseconds).

    While the database is locked by another process, calls go to a worker thread instead,
    so the loop never blocks on a lock.
    """

    def __init__(self, conn: sqlite3.Connection, **kwargs: Any) -> None:
        super().__init__(conn, **kwargs)
        self._in_threads = 0  # calls now running in worker threads; others queue behind them there
        self._loop = asyncio.get_running_loop()
        self._commit_due = False

    @contextlib.contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        """Like ``SqliteSaver.cursor``, but writes made in one loop iteration share one commit."""
        with self.lock:
            self.setup()
            cur = self.conn.cursor()
            try:
                yield cur
            finally:
                cur.close()
                if transaction and not self._commit_due:
                    self._commit_due = True
                    self._loop.call_soon_threadsafe(self._commit)

    def _commit(self) -> None:
        with self.lock:
            self._commit_due = False
            try:
                self.conn.commit()
            except sqlite3.Error:  # a closed connection at shutdown: nothing left to keep
                pass

    def flush(self) -> None:
        """Commit now (called before the connection closes)."""
        if self._commit_due:
            self._commit()

    async def _call(self, fn: Callable[[], T]) -> T:
        if not self._in_threads:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
        self._in_threads += 1
        try:
            return await asyncio.to_thread(_retrying, fn)
        finally:
            self._in_threads -= 1

    async def asetup(self) -> None:
        """Create the checkpoint tables if needed."""

        def setup() -> bool:
            self.setup()
            return True

        await self._call(setup)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._call(lambda: self.get_tuple(config))

    async def alist(  # type: ignore[override]
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        items = await self._call(lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for item in items:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._call(lambda: self.put(config, checkpoint, metadata, new_versions))

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self._call(lambda: self.put_writes(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._call(lambda: self.delete_thread(thread_id))


def connect(path: Path) -> sqlite3.Connection:
    """A connection for a checkpoint file (waits for the lock only while switching it to WAL)."""
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=_LOCK_WAIT_S)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=0"):
        conn.execute(f"PRAGMA {pragma}")
    return conn
