"""Every TrajectoryStore backend (memory, SQLite, PostgreSQL) runs the shipped conformance checks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.errors import StoreError
from tether.store import InMemoryStore, MemoryData, SqlStore, TrajectoryStore
from tether.store.conformance import CHECKS, StoreFactory, check_kill9_durability, temporary_postgres_database

PG_SERVER = os.environ.get("TETHER_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped at the end); skips if no server answers."""
    cm = temporary_postgres_database(PG_SERVER)
    try:
        url = cm.__enter__()
    except StoreError as exc:
        pytest.skip(str(exc))
    yield url
    cm.__exit__(None, None, None)


def _sql_factory(url: str) -> StoreFactory:
    async def factory() -> TrajectoryStore:
        return await SqlStore.open(url)

    return factory


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Opens stores on one backing database per test."""
    if request.param == "memory":
        data = MemoryData()

        async def memory() -> TrajectoryStore:
            return InMemoryStore(data)

        return memory
    if request.param == "sqlite":
        return _sql_factory(f"sqlite:///{tmp_path / 'store.db'}")
    return _sql_factory(request.getfixturevalue("pg_url"))


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
async def test_conformance(check, factory: StoreFactory) -> None:  # type: ignore[no-untyped-def]
    await check(factory)


async def test_kill9_durability_sqlite(tmp_path: Path) -> None:
    await check_kill9_durability(f"sqlite:///{tmp_path / 'kill.db'}")


@pytest.mark.postgres
async def test_kill9_durability_postgres(pg_url: str) -> None:
    await check_kill9_durability(pg_url)
