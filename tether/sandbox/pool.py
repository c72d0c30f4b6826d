"""A warm pool of sandboxes: started ahead, handed out one episode at a time, reset before reuse.

    async with SandboxPool(sandbox_factory("bwrap"), size=8) as pool:
        async with pool.acquire() as sb:      # exclusive until the block ends
            await sb.exec("python3 -c 'print(1)'")

A sandbox is never handed to two holders at once. When it comes back it is reset
(processes killed, ``/work`` and ``/tmp`` wiped, ``put_dir`` mounts dropped) in the
background before it rejoins the idle set; one that fails to reset is closed and
replaced. When the pool is empty, ``acquire`` starts a new sandbox (a cold start), and
the pool refills to ``size`` in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from tether.sandbox.base import SandboxError


class SandboxPool:
    """Warm sandboxes from one factory (any ``SandboxFactory``: bwrap, docker, dummy)."""

    def __init__(self, factory: Any, size: int = 4, *, max_size: int | None = None) -> None:
        if size < 0:
            raise ValueError("pool size must be >= 0")
        self.factory = factory
        self.size = size
        self.max_size = max_size
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._in_use: set[int] = set()
        self._all: dict[int, Any] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._starting = 0
        self._closed = False
        self.cold_starts = 0

    @property
    def idle(self) -> int:
        """Sandboxes ready to hand out now."""
        return self._idle.qsize()

    @property
    def in_use(self) -> int:
        """Sandboxes handed out and not yet returned."""
        return len(self._in_use)

    async def start(self) -> SandboxPool:
        """Start ``size`` sandboxes concurrently; raises ``SandboxError`` if none can start."""
        results = await asyncio.gather(*(self._new() for _ in range(self.size)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for r in results:
            if not isinstance(r, BaseException):
                self._idle.put_nowait(r)
        if errors and self.size and len(errors) == self.size:
            raise SandboxError(f"the sandbox pool could not start any sandbox: {errors[0]}")
        return self

    async def _new(self) -> Any:
        if self.max_size is not None and len(self._all) + self._starting >= self.max_size:
            raise SandboxError(f"the sandbox pool is at its maximum of {self.max_size} sandboxes")
        self._starting += 1
        try:
            sandbox = await self.factory.start()
        finally:
            self._starting -= 1
        self._all[id(sandbox)] = sandbox
        return sandbox

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refill(self) -> None:
        with contextlib.suppress(SandboxError):
            sandbox = await self._new()
            if self._closed:
                await self._discard(sandbox)
            else:
                self._idle.put_nowait(sandbox)

    async def get(self) -> Any:
        """Take a sandbox (warm if one is idle, else started now); give it back with ``release``."""
        if self._closed:
            raise SandboxError("the sandbox pool is closed")
        try:
            sandbox = self._idle.get_nowait()
        except asyncio.QueueEmpty:
            self.cold_starts += 1
            sandbox = await self._new()
        self._in_use.add(id(sandbox))
        if self._idle.qsize() + self._starting < self.size and (
            self.max_size is None or len(self._all) + self._starting < self.max_size
        ):
            self._spawn(self._refill())
        return sandbox

    async def release(self, sandbox: Any) -> None:
        """Return a sandbox; it is reset in the background before anyone gets it again."""
        if id(sandbox) not in self._in_use:
            raise SandboxError("this sandbox was not handed out by this pool")
        self._in_use.discard(id(sandbox))
        self._spawn(self._recycle(sandbox))

    async def _recycle(self, sandbox: Any) -> None:
        if self._closed:
            await self._discard(sandbox)
            return
        try:
            await sandbox.reset()
        except Exception:
            await self._discard(sandbox)
            await self._refill()
            return
        if self._closed:
            await self._discard(sandbox)
        else:
            self._idle.put_nowait(sandbox)

    async def _discard(self, sandbox: Any) -> None:
        self._all.pop(id(sandbox), None)
        with contextlib.suppress(Exception):
            await sandbox.close()

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        """``async with pool.acquire() as sandbox``: exclusive use, returned (and reset) at the end."""
        sandbox = await self.get()
        try:
            yield sandbox
        finally:
            await self.release(sandbox)

    async def close(self) -> None:
        """Close every sandbox, idle or handed out; idempotent."""
        self._closed = True
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await asyncio.gather(*(self._discard(sb) for sb in list(self._all.values())))
        while not self._idle.empty():
            self._idle.get_nowait()

    async def __aenter__(self) -> SandboxPool:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
