"""tether.store: where runs, episodes, steps, rewards and training metrics live.

``await open_store(url)`` gives a ``TrajectoryStore``:

- ``None``                                   the settings default (a SQLite file in the user data dir)
- ``memory://``                              ``InMemoryStore`` (tests, throwaway runs)
- ``sqlite:///PATH`` / ``sqlite+aiosqlite:///PATH``             ``SqlStore`` on a SQLite file
- ``postgresql://`` / ``postgres://`` / ``postgresql+asyncpg://``  ``SqlStore`` on PostgreSQL

Opening a SQL store runs the packaged migrations to head. ``langgraph_checkpointer(store)``
gives a LangGraph checkpointer keeping its checkpoints in that store. See ``docs/store.md``.
"""

from __future__ import annotations

from tether.store.base import TrajectoryStore
from tether.store.checkpoint import langgraph_checkpointer
from tether.store.memory import InMemoryStore, MemoryData
from tether.store.sql import SqlStore
from tether.store.urls import normalize_url

__all__ = [
    "TrajectoryStore",
    "InMemoryStore",
    "MemoryData",
    "SqlStore",
    "open_store",
    "langgraph_checkpointer",
    "normalize_url",
]


async def open_store(url: str | None = None) -> TrajectoryStore:
    """Open the store at ``url`` (None: settings default); ``StoreError`` with one sentence if that fails."""
    if url is None:
        from tether.config import get_settings

        url = get_settings().resolved_db_url()
    backend, norm = normalize_url(url)
    if backend == "memory":
        return InMemoryStore()
    return await SqlStore.open(norm)
