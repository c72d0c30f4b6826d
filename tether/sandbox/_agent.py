"""Host side of the in-sandbox agent (``agent.py``), shared by every backend.

Each backend only knows how to *launch* the agent inside its isolation (a bwrap
process, a docker container, a plain subprocess for the dummy) and how to tear it
down; ``AgentSandbox`` implements the ``Sandbox`` methods on top of the agent's
framed JSON protocol, so every backend behaves (and fails) the same way.

Everything the agent sends is untrusted: frames are size-bounded and checked.
"""

from __future__ import annotations

import asyncio
import base64
import json
import posixpath
import struct
import time
from abc import ABC, abstractmethod
from importlib import resources
from pathlib import Path
from typing import Any

from tether.sandbox.base import (
    ExecResult,
    SandboxError,
    SandboxFileNotFound,
    SandboxLimits,
    SandboxPathError,
)

WORKSPACE = "/work"
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": WORKSPACE,
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "USER": "sandbox",
    "PYTHONDONTWRITEBYTECODE": "1",
}
_MAX_FILE_BYTES = 256 << 20
_RESERVED_TARGETS = ("/", "/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc", "/proc", "/dev", "/tmp", "/.tether")


def agent_source() -> bytes:
    """The agent script's bytes (shipped in the package)."""
    return resources.files("tether.sandbox").joinpath("agent.py").read_bytes()


def agent_path() -> Path:
    """The agent script's path on the host."""
    return Path(str(resources.files("tether.sandbox").joinpath("agent.py")))


class AgentLost(SandboxError):
    """The agent stopped answering (killed, crashed, or spoke out of protocol); the next call restarts it."""


class FrameReader:
    """Reads the agent's frames from a byte stream (override ``read_exactly`` for muxed streams)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    async def read_exactly(self, n: int) -> bytes:
        try:
            return await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise AgentLost("the sandbox agent closed its output") from exc


class AgentConnection:
    """One framed request/response channel to an agent; calls run one at a time."""

    def __init__(self, reader: FrameReader, writer: asyncio.StreamWriter, max_frame: int) -> None:
        self.reader = reader
        self.writer = writer
        self.max_frame = max_frame
        self.lock = asyncio.Lock()
        self.broken = False

    async def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send ``request`` and wait for its response; raises ``AgentLost``."""
        async with self.lock:
            if self.broken:
                raise AgentLost("the sandbox agent is gone")
            body = json.dumps(request).encode()
            try:
                self.writer.write(struct.pack(">I", len(body)) + body)
                await self.writer.drain()
                resp = await asyncio.wait_for(self._read(), timeout)
                if resp.get("recycle") is True:  # the agent used up its own CPU budget: restart it next call
                    self.broken = True
                return resp
            except (TimeoutError, ConnectionError, OSError, AgentLost) as exc:
                self.broken = True
                raise AgentLost(str(exc) or type(exc).__name__) from exc

    async def _read(self) -> dict[str, Any]:
        (size,) = struct.unpack(">I", await self.reader.read_exactly(4))
        if size > self.max_frame:
            raise AgentLost(f"the sandbox agent sent an oversized frame ({size} bytes)")
        try:
            value = json.loads(await self.reader.read_exactly(size))
        except ValueError as exc:
            raise AgentLost("the sandbox agent sent malformed JSON") from exc
        if not isinstance(value, dict):
            raise AgentLost("the sandbox agent sent a non-object frame")
        return value

    def close(self) -> None:
        self.broken = True
        try:
            self.writer.close()
        except (OSError, RuntimeError):
            pass


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return b""


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def sandbox_path(path: str) -> str:
    """Normalise a sandbox path: relative paths are under ``/work``; ``..`` is collapsed."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise SandboxPathError("a sandbox path must be a non-empty string without NUL bytes")
    full = posixpath.normpath(posixpath.join(WORKSPACE, path))
    return "/" + full.lstrip("/")


class AgentSandbox(ABC):
    """A ``Sandbox`` driven through the in-sandbox agent.

    Subclasses implement ``_launch`` (start the isolation running the agent, return the
    connection), ``_teardown`` (stop it, idempotent) and optionally ``_oom_kills``.

    Errors (the same for every backend):
      - ``SandboxError``: not started, closed, the backend failed, or a refused operation.
      - ``SandboxPathError``: a path leaves the allowed folders (``/work``, ``/tmp`` and
        ``put_dir`` targets; writes: ``/work``, ``/tmp`` and writable ``put_dir`` targets),
        also after following symlinks inside the sandbox.
      - ``SandboxFileNotFound``: ``read_file`` of a missing file, ``exec`` in a missing ``cwd``.
    """

    backend: str = "agent"

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self._conn: AgentConnection | None = None
        self._started = False
        self._closed = False
        self._mounts: list[tuple[str, str, bool]] = []  # (host dir, target, read_only) bind mounts
        self._restart_lock = asyncio.Lock()
        self.restarts = 0

    # -- lifecycle -------------------------------------------------------------------
    @abstractmethod
    async def _launch(self) -> AgentConnection:
        """Start the isolation with the agent inside; return the connection to it."""

    @abstractmethod
    async def _teardown(self) -> None:
        """Stop the isolation and every process in it (idempotent)."""

    def startup_log(self) -> str:
        """What the backend printed while starting (shown when a start fails)."""
        return ""

    def _oom_kills(self) -> int | None:
        """The number of OOM kills so far in this sandbox's memory cgroup, if known."""
        return None

    async def start(self) -> AgentSandbox:
        """Start the sandbox; raises ``SandboxError`` when the backend cannot start."""
        if self._closed:
            raise SandboxError(f"{self.backend} sandbox is closed")
        if not self._started:
            await self._relaunch()
            self._started = True
        return self

    def _workspace_in_namespace(self) -> bool:
        """True when ``/work`` and ``/tmp`` live inside the isolation (lost on restart unless packed)."""
        return False

    async def _relaunch(self, *, keep: bool = True) -> None:
        saved: dict[str, Any] | None = None
        if keep and self._conn is not None and not self._conn.broken and self._workspace_in_namespace():
            try:  # carry /work and /tmp over to the new isolation
                saved = await self._conn.call({"op": "pack", "roots": [WORKSPACE, "/tmp"]}, 120)
            except AgentLost:
                saved = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        await self._teardown()
        try:
            conn = await self._launch()
            hello = await conn.call({"op": "ping"}, timeout=30)
        except AgentLost as exc:
            log = self.startup_log().strip()
            await self._teardown()
            detail = f": {log.splitlines()[-1]}" if log else ""
            raise SandboxError(f"{self.backend} sandbox failed to start ({exc}){detail}") from exc
        except SandboxError:
            await self._teardown()
            raise
        if not hello.get("ok"):
            await self._teardown()
            raise SandboxError(f"{self.backend} sandbox agent did not answer: {hello.get('error')}")
        if saved is not None and saved.get("ok") and isinstance(saved.get("data"), str):
            try:
                await conn.call({"op": "unpack", "data": saved["data"]}, 120)
            except AgentLost as exc:
                await self._teardown()
                raise SandboxError(f"{self.backend} sandbox failed to restore its workspace ({exc})") from exc
        self._conn = conn

    async def close(self) -> None:
        """Stop the sandbox and release everything; idempotent, never raises for a dead sandbox."""
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        await self._teardown()

    async def __aenter__(self) -> AgentSandbox:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def started(self) -> bool:
        """True between ``start`` and ``close``."""
        return self._started and not self._closed

    async def _connection(self) -> AgentConnection:
        if self._closed:
            raise SandboxError(f"{self.backend} sandbox is closed")
        if not self._started:
            raise SandboxError(f"{self.backend} sandbox is not started (use `async with` or `await start()`)")
        async with self._restart_lock:
            if self._conn is None or self._conn.broken:
                self.restarts += 1
                await self._relaunch()
            assert self._conn is not None
            return self._conn

    async def _call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        conn = await self._connection()
        resp = await conn.call(request, timeout)
        if resp.get("ok") is True:
            return resp
        kind, error = resp.get("kind"), str(resp.get("error", "unknown error"))[:2000]
        if kind == "path":
            raise SandboxPathError(error)
        if kind == "notfound":
            raise SandboxFileNotFound(error)
        raise SandboxError(error)

    # -- the Sandbox methods ---------------------------------------------------------
    async def exec(
        self,
        cmd: list[str] | str,
        *,
        stdin: bytes | str | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run ``cmd`` (argv list, or a string run by ``/bin/sh -c``) in the sandbox.

        Never raises for what the command did: a non-zero exit, a timeout (``timed_out``,
        exit code 137), output over ``limits.max_output_bytes`` (``truncated``; the command
        is killed), an OOM kill (``oom_killed``), or a killed sandbox (restarted; exit 137).
        Every process the command started is killed when it returns. Raises
        ``SandboxError`` (closed / not started / empty command), ``SandboxPathError``
        (``cwd`` outside the allowed folders) and ``SandboxFileNotFound`` (missing ``cwd``).
        """
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        if not argv or not argv[0] or (isinstance(cmd, str) and not cmd.strip()):
            raise SandboxError("exec needs a non-empty command")
        wall = float(timeout if timeout is not None else self.limits.timeout_s)
        if wall <= 0:
            raise SandboxError("exec timeout must be positive")
        full_env = {**self._base_env(), **{str(k): str(v) for k, v in (env or {}).items()}}
        data = stdin.encode() if isinstance(stdin, str) else stdin
        request = {
            "op": "exec",
            "argv": argv,
            "env": full_env,
            "cwd": sandbox_path(cwd) if cwd else WORKSPACE,
            "timeout": wall,
            "max_output": self.limits.max_output_bytes,
            "stdin": base64.b64encode(data).decode() if data is not None else None,
        }
        oom_before = self._oom_kills()
        start = time.perf_counter()
        try:
            resp = await self._call(request, timeout=wall + 10.0)
        except AgentLost as exc:
            # The agent died (killed from inside, or hung): restart so the next call works.
            async with self._restart_lock:
                self.restarts += 1
                await self._relaunch()
            oom_after = self._oom_kills()
            return ExecResult(
                exit_code=137,
                stderr=f"the sandbox was killed and restarted ({exc}); the workspace was kept",
                oom_killed=bool(oom_before is not None and oom_after is not None and oom_after > oom_before),
                timed_out=(time.perf_counter() - start) >= wall,
                duration_ms=(time.perf_counter() - start) * 1000,
            )
        oom_after = self._oom_kills()
        exit_code = resp.get("exit_code")
        return ExecResult(
            exit_code=exit_code if isinstance(exit_code, int) else 137,
            stdout=_text(_b64(resp.get("stdout"))),
            stderr=_text(_b64(resp.get("stderr"))),
            timed_out=resp.get("timed_out") is True,
            truncated=resp.get("truncated") is True,
            oom_killed=bool(oom_before is not None and oom_after is not None and oom_after > oom_before),
            duration_ms=(time.perf_counter() - start) * 1000,
        )

    async def read_file(self, path: str) -> bytes:
        """Read a regular file (at most 256 MiB) under ``/work``, ``/tmp`` or a ``put_dir`` target.

        Raises ``SandboxPathError`` (outside those folders, also via symlinks),
        ``SandboxFileNotFound`` (missing) and ``SandboxError`` (not a regular file, too large, closed).
        """
        resp = await self._call({"op": "read", "path": sandbox_path(path), "max_bytes": _MAX_FILE_BYTES}, 60)
        return _b64(resp.get("data"))

    async def write_file(self, path: str, data: bytes | str) -> None:
        """Write a file under ``/work``, ``/tmp`` or a writable ``put_dir`` target, creating parents.

        A symlink at ``path`` is replaced, never written through. Raises
        ``SandboxPathError`` (outside those folders, also via symlinked parents) and
        ``SandboxError`` (over the file-size limit, read-only, closed).
        """
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if len(raw) > self.limits.max_file_mb << 20:
            raise SandboxError(f"file is larger than the sandbox limit of {self.limits.max_file_mb} MB")
        await self._call({"op": "write", "path": sandbox_path(path), "data": base64.b64encode(raw).decode()}, 60)

    async def put_dir(self, host_dir: Path | str, target: str, *, read_only: bool = True) -> None:
        """Make host folder ``host_dir`` visible at ``target`` inside the sandbox.

        ``read_only=True`` bind-mounts it (no copy, instant for large corpora; the
        sandbox restarts to add the mount, keeping the workspace). ``read_only=False``
        copies it into ``target``, which must lie under ``/work`` or ``/tmp``. Symlinks in
        the folder are copied as links and resolve inside the sandbox, never on the host.
        Raises ``SandboxError`` (missing host folder, closed) and ``SandboxPathError``
        (``target`` is a system folder, or a writable target outside ``/work``/``/tmp``).
        """
        src = Path(host_dir)
        if not src.is_dir():
            raise SandboxError(f"put_dir: {host_dir} is not a folder on the host")
        dest = sandbox_path(target)
        if read_only:
            if any(dest == r or (r != "/" and dest.startswith(r + "/")) for r in _RESERVED_TARGETS) or dest in (
                WORKSPACE,
            ):
                raise SandboxPathError(f"put_dir target {target!r} is a system folder")
            if dest.startswith(WORKSPACE + "/"):
                raise SandboxPathError("a read-only put_dir target must be outside /work (e.g. /corpus)")
            self._check_shareable(src)
            await self._connection()
            self._mounts = [m for m in self._mounts if m[1] != dest] + [(str(src.resolve()), dest, True)]
            async with self._restart_lock:
                await self._relaunch()
            return
        if not (dest.startswith(WORKSPACE + "/") or dest == WORKSPACE or dest.startswith("/tmp/")):
            raise SandboxPathError("a writable put_dir target must lie under /work or /tmp")
        await self._copy_in(src, dest)

    def _check_shareable(self, src: Path) -> None:
        """Raise ``SandboxError`` when the sandbox user could not read a bind-mounted ``src``."""
        uid = self._sandbox_host_uid()
        if uid is None:
            return
        st = src.stat()
        if st.st_uid != uid and (st.st_mode & 0o005) != 0o005:
            raise SandboxError(
                f"put_dir: {src} is not readable by other users (mode {st.st_mode & 0o777:o}); "
                "make it o+rx (chmod o+rx) or use read_only=False to copy it"
            )

    def _sandbox_host_uid(self) -> int | None:
        """The host uid sandboxed commands run as, when it differs from ours (else ``None``)."""
        return None

    async def _copy_in(self, src: Path, dest: str) -> None:
        """Copy a host folder into the sandbox file by file through the agent."""
        for item in sorted(src.rglob("*")):
            rel = item.relative_to(src).as_posix()
            target = posixpath.join(dest, rel)
            if item.is_symlink():
                link = str(item.readlink())
                await self.exec(["ln", "-sfn", link, target])
            elif item.is_dir():
                await self.exec(["mkdir", "-p", target])
            elif item.is_file():
                await self.write_file(target, item.read_bytes())
        await self.exec(["mkdir", "-p", dest])

    async def reset(self) -> None:
        """Kill every process, wipe ``/work``, ``/tmp`` and ``/dev/shm`` and drop ``put_dir`` mounts.

        Raises ``SandboxError`` when the sandbox is closed or cannot restart.
        """
        if self._mounts:
            self._mounts = []
            async with self._restart_lock:
                await self._relaunch(keep=False)
        request = {"op": "reset", "wipe": self._wipe_roots()}
        try:
            await self._call(request, 60)
        except AgentLost:
            async with self._restart_lock:
                await self._relaunch(keep=False)
            await self._call(request, 60)

    def _wipe_roots(self) -> list[str]:
        """The sandbox folders ``reset`` empties."""
        return [WORKSPACE, "/tmp", "/dev/shm"]

    def _base_env(self) -> dict[str, str]:
        """The environment every command starts from (nothing of the host's)."""
        return dict(BASE_ENV)

    def _nproc_limit(self) -> int | None:
        """RLIMIT_NPROC for the agent and its commands (``None``: not set)."""
        return self.limits.max_processes

    def _agent_args(self, sweep: bool) -> list[str]:
        """Arguments for ``agent.py``: limits, sweep mode and extra readable/writable roots."""
        limits = {
            "as": self.limits.memory_mb << 20,
            "fsize": self.limits.max_file_mb << 20,
            "nproc": self._nproc_limit(),
            "core": 0,
            "nofile": 1024,
            "cpu": self.limits.cpu_seconds,
        }
        args = ["--limits", json.dumps(limits)]
        if sweep:
            args.append("--sweep")
        for _, target, ro in self._mounts:
            args += ["--read-root" if ro else "--write-root", target]
        return args
