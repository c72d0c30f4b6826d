"""LangGraph checkpointers that live next to the trajectory store.

- ``memory://``      -> ``InMemorySaver`` (gone with the process)
- SQLite ``x.db``    -> ``LoopSqliteSaver`` (``sqlite_saver.py``) on the sibling file
  ``x.db.checkpoints.db`` (a separate file so checkpoints never contend for the store's
  write lock); ``AsyncSqliteSaver`` was ~5x slower for 100 concurrent episodes.
- PostgreSQL         -> ``AsyncPostgresSaver`` (psycopg) on the same database; its tables
  (``checkpoints``, ``checkpoint_blobs``, ``checkpoint_writes``, ``checkpoint_migrations``)
  sit beside the store's and ``setup()`` is called for you.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from tether.errors import StoreError
from tether.store.urls import display_url, normalize_url, psycopg_url, sqlite_path

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver


def checkpoint_path(sqlite_url: str) -> Path:
    """The checkpoint file used for a SQLite store URL."""
    db = sqlite_path(normalize_url(sqlite_url)[1])
    return db.with_name(db.name + ".checkpoints.db")


@contextlib.asynccontextmanager
async def langgraph_checkpointer(url: str | None = None) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Yield a LangGraph checkpointer for the database of ``url`` (None: the settings default)."""
    if url is None:
        from tether.config import get_settings

        url = get_settings().resolved_db_url()
    backend, norm = normalize_url(url)
    if backend == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
        return
    if backend == "sqlite":
        from tether.store.sqlite_saver import LoopSqliteSaver, connect

        conn = await asyncio.to_thread(connect, checkpoint_path(norm))
        try:
            lsaver = LoopSqliteSaver(conn)
            await lsaver.asetup()
            yield lsaver
            lsaver.flush()
        finally:
            conn.close()
        return
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    try:
        cm = AsyncPostgresSaver.from_conn_string(psycopg_url(norm))
        pgsaver = await cm.__aenter__()
        await pgsaver.setup()
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
        raise StoreError(f"Cannot open the checkpoint database at {display_url(norm)}: {reason}.") from exc
    try:
        yield pgsaver
    except BaseException as exc:
        if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        await cm.__aexit__(None, None, None)
