"""SQL store specifics: URLs, open errors, migrations, group commit, LangGraph checkpointers."""

from __future__ import annotations

import asyncio
import operator
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, TypedDict

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from tether.config import get_settings
from tether.errors import StoreError
from tether.store import InMemoryStore, SqlStore, langgraph_checkpointer, normalize_url, open_store
from tether.store.conformance import make_episode, make_step, temporary_postgres_database
from tether.store.migrate import HEAD, alembic_config
from tether.store.tables import metadata

PG_SERVER = os.environ.get("TETHER_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    cm = temporary_postgres_database(PG_SERVER)
    try:
        url = cm.__enter__()
    except StoreError as exc:
        pytest.skip(str(exc))
    yield url
    cm.__exit__(None, None, None)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 's.db'}"
    return str(request.getfixturevalue("pg_url"))


# ----- URLs -----


@pytest.mark.parametrize(
    ("url", "backend", "normalised"),
    [
        ("memory://", "memory", "memory://"),
        ("sqlite:///x.db", "sqlite", "sqlite+aiosqlite:///x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:pw@127.0.0.1:5432/db", "postgresql", "postgresql+asyncpg://u:pw@127.0.0.1:5432/db"),
        ("postgres://u@127.0.0.1/db", "postgresql", "postgresql+asyncpg://u@127.0.0.1/db"),
        ("postgresql+asyncpg://u@127.0.0.1/db", "postgresql", "postgresql+asyncpg://u@127.0.0.1/db"),
    ],
)
def test_normalize_url(
    url: str, backend: str, normalised: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalize_url(url) == (backend, normalised)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("mysql://u@127.0.0.1/db", "Unsupported database URL"),
        ("not a url", "Unsupported database URL"),
        ("sqlite://", "names no file"),
        ("sqlite:///:memory:", "names no file"),
        ("sqlite:////no/such/dir/x.db", "does not exist"),
        ("postgresql://u:secret@127.0.0.1", "names no database"),
        ("postgresql://postgres@127.0.0.1:1/test", "connection refused"),
    ],
)
async def test_bad_urls_give_one_sentence(url: str, needle: str) -> None:
    with pytest.raises(StoreError) as info:
        await open_store(url)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message and message.endswith(".")
    assert "secret" not in message


async def test_open_store_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(await open_store("memory://"), InMemoryStore)
    monkeypatch.setenv("TETHER_DB_URL", f"sqlite:///{tmp_path / 'default.db'}")
    get_settings.cache_clear()
    try:
        store = await open_store(None)
    finally:
        get_settings.cache_clear()
    assert isinstance(store, SqlStore) and store.url == f"sqlite+aiosqlite:///{tmp_path / 'default.db'}"
    await store.close()
    assert (tmp_path / "default.db").is_file()


# ----- migrations -----


async def test_migrations_match_tables(sql_url: str) -> None:
    store = await SqlStore.open(sql_url)
    await store.close()
    engine = create_async_engine(normalize_url(sql_url)[1])
    try:
        async with engine.connect() as conn:
            diffs = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
    finally:
        await engine.dispose()
    assert diffs == []
    assert version == HEAD


async def test_concurrent_opens_migrate_once(sql_url: str) -> None:
    stores = await asyncio.gather(*(SqlStore.open(sql_url) for _ in range(4)))
    ep = make_episode()
    await stores[0].start_episode(ep)
    await stores[1].add_step(ep.id, make_step(0))
    got = await stores[3].get_episode(ep.id)
    assert got is not None and got.steps == [make_step(0)]
    for s in stores:
        await s.close()


def test_alembic_command_downgrade_and_upgrade(tmp_path: Path) -> None:
    """env.py also runs on its own (async engine from sqlalchemy.url), as the ``alembic`` command does."""
    db = tmp_path / "m.db"
    cfg = alembic_config()
    cfg.set_main_option("sqlalchemy.url", f"sqlite+aiosqlite:///{db}")
    command.upgrade(cfg, "head")
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "episodes", "steps", "rewards", "train_metrics", "alembic_version"} <= tables
    command.downgrade(cfg, "base")
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"alembic_version"}
    command.upgrade(cfg, "head")
    assert sqlite3.connect(db).execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'w.db'}")
    await store.close()
    assert sqlite3.connect(tmp_path / "w.db").execute("PRAGMA journal_mode").fetchone() == ("wal",)


# ----- group commit -----


async def test_group_commit_batches_concurrent_steps(sql_url: str) -> None:
    store = await SqlStore.open(sql_url)
    try:
        eps = [make_episode() for _ in range(40)]
        await asyncio.gather(*(store.start_episode(e) for e in eps))
        before = store.commits

        async def write(ep_id: str) -> None:
            for i in range(5):
                await store.add_step(ep_id, make_step(i))

        await asyncio.gather(*(write(e.id) for e in eps))
        commits = store.commits - before
        assert commits <= 40 * 5 // 4, f"{commits} commits for 200 concurrent steps: writes are not grouped"
        assert store.committed_ops >= 240
    finally:
        await store.close()


async def test_pending_writes_commit_on_close(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = await SqlStore.open(url)
    ep = make_episode()
    await store.start_episode(ep)
    tasks = [asyncio.create_task(store.add_step(ep.id, make_step(i))) for i in range(10)]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*tasks)
    reopened = await SqlStore.open(url)
    got = await reopened.get_episode(ep.id)
    await reopened.close()
    assert got is not None and len(got.steps) == 10


# ----- LangGraph checkpointers -----


class _State(TypedDict):
    log: Annotated[list[str], operator.add]


def _graph():  # type: ignore[no-untyped-def]
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(_State)
    g.add_node("first", lambda s: {"log": ["first"]})
    g.add_node("second", lambda s: {"log": ["second"]})
    g.add_edge(START, "first")
    g.add_edge("first", "second")
    g.add_edge("second", END)
    return g


@pytest.mark.parametrize("backend", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_checkpointer_resumes_a_graph(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'g.db'}"}.get(backend) or str(
        request.getfixturevalue("pg_url")
    )
    config = {"configurable": {"thread_id": "t-" + os.urandom(4).hex()}}
    async with langgraph_checkpointer(url) as saver:
        graph = _graph().compile(checkpointer=saver, interrupt_before=["second"])
        first = await graph.ainvoke({"log": []}, config)
        assert first["log"] == ["first"]
        if backend == "memory":  # nothing outlives the saver: resume with the same one
            done = await graph.ainvoke(None, config)
            assert done["log"] == ["first", "second"]
            return
    async with langgraph_checkpointer(url) as saver:  # a fresh connection resumes where it stopped
        graph = _graph().compile(checkpointer=saver, interrupt_before=["second"])
        state = await graph.aget_state(config)
        assert state.next == ("second",)
        done = await graph.ainvoke(None, config)
        assert done["log"] == ["first", "second"]


async def test_checkpointer_bad_postgres_url() -> None:
    with pytest.raises(StoreError, match="Cannot open the database"):
        async with langgraph_checkpointer("postgresql://postgres@127.0.0.1:1/test"):
            pass


async def test_sqlite_lock_held_elsewhere_does_not_block_the_loop(tmp_path: Path) -> None:
    """While another connection holds the write lock, writes wait off the loop and reads still answer."""
    db = tmp_path / "locked.db"
    store = await SqlStore.open(f"sqlite:///{db}")
    ep = make_episode()
    await store.start_episode(ep)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    write = asyncio.create_task(store.add_step(ep.id, make_step(0)))
    await asyncio.sleep(0.4)
    assert not write.done()  # waiting for the lock ...
    assert ticks >= 10  # ... without blocking the event loop
    got = await store.get_episode(ep.id)  # readers are not blocked by a writer in WAL mode
    assert got is not None and got.steps == []
    other.execute("COMMIT")
    await asyncio.wait_for(write, 10)
    tick_task.cancel()
    got = await store.get_episode(ep.id)
    assert got is not None and got.steps == [make_step(0)]
    other.close()
    await store.close()
