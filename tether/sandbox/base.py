"""The ``Sandbox`` seam: run commands and move files in an isolated workspace.

Starting a sandbox (``SandboxFactory.start``) is kept apart from using it (the
``Sandbox`` methods). Every backend raises the same errors:

- ``SandboxError``: the sandbox could not start, or was closed.
- ``SandboxPathError`` (a ``SandboxError``): a path leaves the allowed roots.
- ``FileNotFoundError``-like ``SandboxFileNotFound`` (a ``SandboxError``) for missing files.

``exec`` never raises for what the command did: timeouts, OOM kills and truncated
output are reported in ``ExecResult``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from tether.errors import TetherError


class SandboxError(TetherError):
    """The sandbox failed to start, was closed, or refused an operation."""


class SandboxPathError(SandboxError):
    """A path leaves the sandbox's allowed roots."""


class SandboxFileNotFound(SandboxError):
    """A file asked for does not exist in the sandbox."""


class ExecResult(BaseModel):
    """What one command did."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    oom_killed: bool = False
    truncated: bool = False
    duration_ms: float = 0.0


class SandboxLimits(BaseModel):
    """Resource limits applied to every command."""

    timeout_s: float = 30.0
    memory_mb: int = 512
    cpu_seconds: int = 30
    max_processes: int = 64
    max_file_mb: int = 64
    max_output_bytes: int = 1_000_000
    workspace_mb: int = 256


@runtime_checkable
class Sandbox(Protocol):
    """An isolated workspace; use as ``async with``."""

    async def exec(
        self,
        cmd: list[str] | str,
        *,
        stdin: bytes | str | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run ``cmd`` (argv list, or a string run by ``sh -c``)."""
        ...

    async def read_file(self, path: str) -> bytes:
        """Read a file inside the sandbox."""
        ...

    async def write_file(self, path: str, data: bytes | str) -> None:
        """Write a file inside the sandbox's writable workspace."""
        ...

    async def put_dir(self, host_dir: Path | str, target: str, *, read_only: bool = True) -> None:
        """Make a host folder visible at ``target`` inside the sandbox."""
        ...

    async def reset(self) -> None:
        """Wipe the workspace and kill every process."""
        ...

    async def close(self) -> None:
        """Stop the sandbox and release everything."""
        ...

    async def __aenter__(self) -> Sandbox: ...

    async def __aexit__(self, *exc: object) -> None: ...


@runtime_checkable
class SandboxFactory(Protocol):
    """Starts sandboxes of one backend with fixed options (kept apart from using them)."""

    backend: str

    async def start(self) -> Sandbox:
        """Start and return a new sandbox; raises ``SandboxError`` when it cannot start."""
        ...
