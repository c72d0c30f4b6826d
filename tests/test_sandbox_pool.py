"""The warm pool: handed out exclusively, reset before reuse, refilled, closed."""

from __future__ import annotations

import asyncio

import pytest

from tether.sandbox.base import SandboxError
from tether.sandbox.pool import SandboxPool
from tether.sandbox.registry import backend_unavailable, sandbox_factory


@pytest.fixture(params=["dummy", "bwrap"])
def factory(request: pytest.FixtureRequest):
    why = backend_unavailable(request.param)
    if why:
        pytest.skip(why)
    return sandbox_factory(request.param)


async def test_reuse_is_reset_and_exclusive(factory) -> None:
    async with SandboxPool(factory, size=1, max_size=2) as pool:
        async with pool.acquire() as a, pool.acquire() as b:
            assert a is not b and pool.in_use == 2
            await a.write_file("secret.txt", "episode one")
            r = await a.exec("sleep 300 > /dev/null 2>&1 & echo started")
            assert r.stdout == "started\n"
        for _ in range(200):  # the resets run in the background
            if pool.idle == 2:
                break
            await asyncio.sleep(0.05)
        assert pool.idle == 2
        async with pool.acquire() as c, pool.acquire() as d:
            assert {id(c), id(d)} == {id(a), id(b)}, "the pool did not reuse its sandboxes"
            for sb in (c, d):
                r = await sb.exec("ls -A . | grep -v '^.tmp$' | wc -l")
                assert r.stdout.strip() == "0", "a reused sandbox still had the last episode's files"


async def test_empty_pool_starts_cold_and_refills(factory) -> None:
    async with SandboxPool(factory, size=1) as pool:
        held = [await pool.get(), await pool.get()]
        assert pool.cold_starts == 1
        for sb in held:
            assert (await sb.exec(["echo", "ok"])).stdout == "ok\n"
            await pool.release(sb)
        with pytest.raises(SandboxError):
            await pool.release(held[0])  # already returned


async def test_close_closes_everything(factory) -> None:
    pool = await SandboxPool(factory, size=2).start()
    taken = await pool.get()
    await pool.close()
    with pytest.raises(SandboxError):
        await taken.exec(["true"])
    with pytest.raises(SandboxError):
        await pool.get()


async def test_max_size_is_enforced() -> None:
    async with SandboxPool(sandbox_factory("dummy"), size=1, max_size=1) as pool:
        await pool.get()
        with pytest.raises(SandboxError, match="maximum"):
            await pool.get()
