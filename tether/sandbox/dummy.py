"""``DummySandbox``: the FAKE sandbox for tests of other areas. It isolates NOTHING.

Commands run as plain host subprocesses of the current user, in a temporary folder
that stands for ``/work`` (``/tmp`` maps to ``<folder>/.tmp``, read-only ``put_dir``
targets map to the host folder). The file methods, timeouts, output caps and errors
behave like the real backends because they go through the same agent; but a command
that names ``/work`` literally sees the host's ``/work``, there is no namespace, no
network block and no resource limit but the wall timeout and output cap. It passes the
conformance suite, and is expected to fail the escape suite. Never give it to a model
you do not trust.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

from tether.sandbox._agent import WORKSPACE, AgentConnection, AgentSandbox, FrameReader, agent_path
from tether.sandbox.base import SandboxError, SandboxLimits


class DummySandbox(AgentSandbox):
    """Plain subprocesses in a temp dir; NO isolation (a fake for tests)."""

    backend = "dummy"

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        super().__init__(limits)
        self.root: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None

    def _nproc_limit(self) -> int | None:
        return None

    def _wipe_roots(self) -> list[str]:
        return [WORKSPACE, "/tmp"]  # /tmp is <root>/.tmp; never the host's /dev/shm

    def _base_env(self) -> dict[str, str]:
        env = super()._base_env()
        if self.root is not None:
            env.update(HOME=str(self.root), TMPDIR=str(self.root / ".tmp"))
        return env

    async def _launch(self) -> AgentConnection:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="tether-dummy-"))
        args = [sys.executable, "-I", "-S", str(agent_path()), "--root", str(self.root), *self._agent_args(sweep=False)]
        for host, target, _ in self._mounts:
            args += ["--map", target, host]
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20
            )
        except OSError as exc:
            raise SandboxError(f"could not start the dummy sandbox: {exc}") from exc
        assert self._proc.stdin is not None and self._proc.stdout is not None
        max_frame = (max(256 << 20, self.limits.max_output_bytes) * 4) // 3 + (1 << 20)
        return AgentConnection(FrameReader(self._proc.stdout), self._proc.stdin, max_frame)

    async def _teardown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 10)
        if self._closed and self.root is not None:
            await asyncio.to_thread(shutil.rmtree, self.root, True)
            self.root = None
