"""How ``SqlStore`` runs its (synchronous, SQLAlchemy Core) query functions on each database.

Every store operation is a plain function ``fn(conn: sqlalchemy.Connection) -> T``; an
executor runs it in one transaction:

- PostgreSQL: an ``AsyncEngine`` (asyncpg) and ``AsyncConnection.run_sync`` — the function
  runs in the event loop, each statement awaits the network without blocking it.
- SQLite: the stdlib driver, **in the event loop thread**, with ``busy_timeout=0``. A local
  SQLite statement takes microseconds, while a hop to a driver thread (what aiosqlite does
  for every statement) costs 0.1–0.5 ms on a loaded machine and dominated the agent loop.
  If the database is locked by another process the operation is retried in a worker
  thread with a 30 s busy timeout, so the loop never waits on a lock; large reads
  (``heavy=True``) always run in a worker thread.

SQLite connections use WAL, ``synchronous=NORMAL`` (a commit survives a process kill),
foreign keys, and explicit ``BEGIN IMMEDIATE`` for writes (``BEGIN`` for reads).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tether.store import migrate

T = TypeVar("T")
_SLOW_BUSY_MS = 30_000


def _is_busy(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "locked" in text or "busy" in text


class Executor(ABC):
    """Runs query functions in transactions on one database (one subclass per database kind)."""

    @abstractmethod
    async def migrate(self) -> None:
        """Bring the schema to head (safe when several processes open at once)."""

    @abstractmethod
    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction and commit it."""

    @abstractmethod
    async def read(self, fn: Callable[[Connection], T], *, heavy: bool = False) -> T:
        """Run ``fn`` on a read connection (one consistent snapshot on SQLite)."""

    @abstractmethod
    async def close(self) -> None:
        """Close every connection."""


class PostgresExecutor(Executor):
    """asyncpg through SQLAlchemy's ``AsyncEngine``."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, connect_args={"timeout": 10}
        )

    async def migrate(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(migrate.upgrade_sync)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    async def read(self, fn: Callable[[Connection], T], *, heavy: bool = False) -> T:
        async with self.engine.connect() as conn:
            return await conn.run_sync(fn)

    async def close(self) -> None:
        await self.engine.dispose()


def sqlite_engine(path: str, *, begin: str, pool_size: int) -> Engine:
    """A stdlib-sqlite3 engine usable from the loop and worker threads (never concurrently per connection)."""
    engine = sa.create_engine(
        f"sqlite:///{path}",
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"check_same_thread": False, "timeout": _SLOW_BUSY_MS / 1000},
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver must not BEGIN on its own; we do below
        # switching a new file to WAL needs the lock: wait for it here, then never block the loop
        _switch_to_wal(dbapi_conn)
        for pragma in ("synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=0"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _switch_to_wal(dbapi_conn: Any) -> None:
    """Put the file in WAL mode. SQLite may answer "locked" at once, without waiting, while
    another connection switches the same new file, so retry for a bounded time."""
    deadline = time.monotonic() + _SLOW_BUSY_MS / 1000
    while True:
        try:
            if str(dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


async def _unless_locked(run: Callable[..., T], fn: Callable[[Any], T]) -> T:
    """``run(fn)`` in the loop thread; if the database is locked, ``run(fn, 30 s)`` in a worker thread."""
    try:
        return run(fn)
    except (sa.exc.OperationalError, sqlite3.OperationalError) as exc:
        if not _is_busy(exc):
            raise
    return await asyncio.to_thread(run, fn, _SLOW_BUSY_MS)


def _busy_timeout(conn: Connection, ms: int) -> None:
    conn.connection.driver_connection.execute(f"PRAGMA busy_timeout={ms}")  # type: ignore[union-attr]


class SqliteExecutor(Executor):
    """The stdlib driver in the event loop thread; worker threads only for locks and large reads."""

    def __init__(self, url: str) -> None:
        path = make_url(url).database or ""
        self._wengine = sqlite_engine(path, begin="BEGIN IMMEDIATE", pool_size=1)
        self._rengine = sqlite_engine(path, begin="BEGIN", pool_size=4)
        self._wconn: Connection | None = None

    def _writer(self) -> Connection:
        if self._wconn is None:
            self._wconn = self._wengine.connect()
        return self._wconn

    def _write_sync(self, fn: Callable[[Connection], T], busy_ms: int = 0) -> T:
        conn = self._writer()
        if busy_ms:
            _busy_timeout(conn, busy_ms)
        try:
            with conn.begin():
                return fn(conn)
        finally:
            if busy_ms:
                _busy_timeout(conn, 0)

    def _read_sync(self, fn: Callable[[Connection], T], busy_ms: int = 0) -> T:
        with self._rengine.connect() as conn:
            _busy_timeout(conn, busy_ms)
            with conn.begin():
                return fn(conn)

    def _write_dbapi_sync(self, fn: Callable[[sqlite3.Connection], T], busy_ms: int = 0) -> T:
        conn: sqlite3.Connection = self._writer().connection.driver_connection  # type: ignore[assignment]
        if busy_ms:
            conn.execute(f"PRAGMA busy_timeout={busy_ms}")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        finally:
            if busy_ms:
                conn.execute("PRAGMA busy_timeout=0")

    def write_dbapi_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``write_dbapi`` in the calling thread without waiting for a lock (``sqlite3.OperationalError`` if locked)."""
        return self._write_dbapi_sync(fn)

    async def write_dbapi(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the raw ``sqlite3`` write connection in one ``BEGIN IMMEDIATE`` transaction.

        In the loop thread; if another process holds the write lock, in a worker thread that
        waits for it (up to 30 s).
        """
        return await _unless_locked(self._write_dbapi_sync, fn)

    async def migrate(self) -> None:
        await asyncio.to_thread(self._write_sync, migrate.upgrade_sync, _SLOW_BUSY_MS)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        return await _unless_locked(self._write_sync, fn)

    async def read(self, fn: Callable[[Connection], T], *, heavy: bool = False) -> T:
        if heavy:
            return await asyncio.to_thread(self._read_sync, fn, _SLOW_BUSY_MS)
        return await _unless_locked(self._read_sync, fn)

    async def close(self) -> None:
        if self._wconn is not None:
            self._wconn.close()
            self._wconn = None
        self._wengine.dispose()
        self._rengine.dispose()
