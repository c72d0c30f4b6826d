"""The LangGraph checkpointer of a trajectory store: ``StoreCheckpointSaver`` on its database.

Checkpoints live in the store's own database (``lg_checkpoints`` / ``lg_checkpoint_writes``;
SQLite by default, PostgreSQL when the store is, in memory for ``memory://``) and are
written by the store's group-commit writer, in the same transactions as the steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tether.store.base import TrajectoryStore
from tether.store.saver import StoreCheckpointSaver


@contextlib.asynccontextmanager
async def langgraph_checkpointer(store: TrajectoryStore | str | None = None) -> AsyncIterator[StoreCheckpointSaver]:
    """Yield a LangGraph checkpointer keeping its checkpoints in ``store``.

    ``store`` is an open ``TrajectoryStore``, or a URL (None: the settings default) for a
    store opened here and closed on exit.
    """
    if store is None or isinstance(store, str):
        from tether.store import open_store

        opened = await open_store(store)
        try:
            yield StoreCheckpointSaver(opened)  # type: ignore[arg-type]
        finally:
            await opened.close()
        return
    yield StoreCheckpointSaver(store)  # type: ignore[arg-type]
