"""The bubblewrap backend: a long-lived bwrap process per sandbox with the agent as pid 1.

Isolation (each sandbox):
- user, pid, net, ipc, uts, mount and cgroup namespaces (``--unshare-all``); no network
  but a private loopback; ``--new-session``; ``--die-with-parent``; every capability dropped;
  the agent is pid 1 of the pid namespace, so nothing inside can signal host processes
  and everything dies with it.
- read-only binds of ``/usr`` (and the ``/bin``/``/lib`` links), a handful of harmless ``/etc``
  files and a generated ``/etc/passwd``; fresh ``/proc``, minimal ``/dev``, private ``/tmp``
  and ``/work`` (see ``workspace.py``), ``put_dir`` read-only bind mounts; ``/`` read-only.
- scrubbed environment (``BASE_ENV`` plus what ``exec`` passes).
- as root: bwrap runs as a fresh unprivileged host uid per sandbox (so host-root files
  are not the sandbox's, RLIMIT_NPROC binds and sandboxes cannot touch each other), in
  its own cgroup (pids, memory with OOM-kill accounting, one CPU), with ``/work`` and
  ``/tmp`` on one size-capped host tmpfs. Not root: bwrap runs as the invoking user with
  rlimits only, and ``/work`` and ``/tmp`` are size-capped tmpfs inside the namespace
  (the agent carries them over restarts).
- per command: CPU seconds, address space, processes, file size, wall timeout that kills
  the whole tree, output cap, and every leftover process killed when the call returns.

Host paths reach bwrap as open file descriptors, so folders only root can traverse
(e.g. pytest's tmp dirs) can still be mounted read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from tether.sandbox._agent import WORKSPACE, AgentConnection, AgentSandbox, FrameReader, agent_source
from tether.sandbox.base import SandboxError, SandboxLimits
from tether.sandbox.cgroups import SandboxCgroup
from tether.sandbox.workspace import HostWorkspace

SANDBOX_UID = 65534
_ETC_FILES = (
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
)
_PASSWD = "sandbox:x:65534:65534:sandbox:/work:/bin/sh\n"
_GROUP = "sandbox:x:65534:\n"
_HOSTS = "127.0.0.1 localhost sandbox\n::1 localhost\n"
_used_uids: set[int] = set()
_UID_BASE = 2_000_000_000


def bwrap_available(binary: str = "bwrap") -> bool:
    """True when bubblewrap is installed and can build this backend's namespaces here.

    As root the probe runs as an unprivileged uid, like the real sandboxes do.
    """
    path = shutil.which(binary)
    if path is None:
        return False
    probe = [path, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"]
    probe += ["--ro-bind", "/", "/", "--", "/bin/true"]
    drop = None
    if os.geteuid() == 0:
        uid = _UID_BASE - 1

        def drop() -> None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)

    try:
        return subprocess.run(probe, capture_output=True, timeout=20, preexec_fn=drop).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _alloc_uid() -> int:
    while True:
        uid = _UID_BASE + random.randrange(1, 100_000_000)
        if uid not in _used_uids:
            _used_uids.add(uid)
            return uid


def _python_for_sandbox() -> tuple[str, list[str]]:
    """A host python3 to run the agent, and extra folders to bind so it can start."""
    for candidate in (os.path.realpath(sys.executable), "/usr/bin/python3"):
        if candidate.startswith("/usr/") and os.access(candidate, os.X_OK):
            return candidate, []
    real = os.path.realpath(sys.executable)
    return real, sorted({sys.base_prefix, os.path.dirname(real)})


class BwrapSandbox(AgentSandbox):
    """A bubblewrap sandbox (see the module docstring for what it isolates)."""

    backend = "bwrap"

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        binary: str = "bwrap",
        cpus: float = 1.0,
    ) -> None:
        super().__init__(limits)
        found = shutil.which(binary)
        if found is None:
            raise SandboxError("bubblewrap (bwrap) is not installed; install the Debian package 'bubblewrap'")
        self.binary = found
        self.cpus = cpus
        self.is_root = os.geteuid() == 0
        self.host_uid = _alloc_uid() if self.is_root else os.getuid()
        self._workspace = HostWorkspace(self.host_uid, self.limits.workspace_mb, prefix="tether-bwrap-")
        self._state: Path | None = None
        self._work: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._cgroup: SandboxCgroup | None = None
        self._fds: list[int] = []

    # -- one-time host state (workspace, passwd, agent) --------------------------------
    async def _prepare(self) -> None:
        if self._state is not None:
            return
        self._work = await self._workspace.create()
        state = self._work.parent
        for name, text in (("passwd", _PASSWD), ("group", _GROUP), ("hosts", _HOSTS), ("agent.py", None)):
            f = state / name
            f.write_bytes(agent_source() if text is None else text.encode())
            f.chmod(0o644)
        self._state = state

    def _system_args(self) -> list[str]:
        args: list[str] = []
        for d in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(d):
                args += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                args += ["--ro-bind", d, d]
        for f in _ETC_FILES:
            if os.path.exists(f):
                args += ["--ro-bind", f, f]
        return args

    def _command(self, python: str, extra_binds: list[str]) -> list[str]:
        assert self._state is not None and self._work is not None
        state = self._state
        args = [
            self.binary,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--hostname", "sandbox",
            *self._system_args(),
            "--ro-bind", str(state / "passwd"), "/etc/passwd",
            "--ro-bind", str(state / "group"), "/etc/group",
            "--ro-bind", str(state / "hosts"), "/etc/hosts",
            "--proc", "/proc",
            "--dev", "/dev",
            "--size", str(min(64, self.limits.workspace_mb) << 20), "--tmpfs", "/dev/shm",
            "--ro-bind", str(state / "agent.py"), "/.tether/agent.py",
        ]  # fmt: skip
        if self._workspace_in_namespace():  # no size-capped host tmpfs: cap it inside instead
            size = str(self.limits.workspace_mb << 20)
            args += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", WORKSPACE]
        else:
            args += ["--bind", str(self._workspace.tmp), "/tmp", "--bind", str(self._work), WORKSPACE]
        for d in extra_binds:
            args += ["--ro-bind", d, d]
        self._fds = []
        for host, target, _ in self._mounts:
            fd = os.open(host, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            self._fds.append(fd)
            args += ["--ro-bind-fd", str(fd), target]
        args += [
            "--remount-ro",
            "/",
            "--remount-ro",
            "/dev",
            "--chdir",
            WORKSPACE,
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
            "--cap-drop",
            "ALL",
        ]
        args += ["--", python, "-I", "-S", "/.tether/agent.py", *self._agent_args(sweep=True)]
        return args

    def _workspace_in_namespace(self) -> bool:
        # Without a size-capped host tmpfs (not root), /work and /tmp are size-capped tmpfs
        # inside the namespace; restarts (put_dir, a killed agent) carry them over via the agent.
        return not self._workspace.mounted

    def _sandbox_host_uid(self) -> int | None:
        return self.host_uid if self.is_root else None

    def _nproc_limit(self) -> int | None:
        if self.is_root:
            return self.limits.max_processes
        # RLIMIT_NPROC counts all of the user's processes: allow what runs already plus the budget.
        try:
            mine = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and p.stat().st_uid == os.getuid())
        except OSError:
            mine = 1000
        return mine + self.limits.max_processes

    async def _launch(self) -> AgentConnection:
        await self._prepare()
        assert self._state is not None
        python, extra = _python_for_sandbox()
        cmd = self._command(python, extra)
        if self.is_root and self._cgroup is None:
            self._cgroup = SandboxCgroup.create(
                f"bwrap-{self.host_uid}-{os.getpid()}",
                memory_mb=self.limits.memory_mb,
                max_processes=self.limits.max_processes + 8,
                cpus=self.cpus,
            )
        procs_files = self._cgroup.procs_files() if self._cgroup else []
        uid = self.host_uid if self.is_root else None

        def enter() -> None:  # runs in the child before exec: join the cgroup, then drop root
            for f in procs_files:
                with open(f, "w") as fh:
                    fh.write(str(os.getpid()))
            if uid is not None:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)

        log = open(self._state / "bwrap.log", "wb")  # noqa: SIM115 - handed to the child
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                pass_fds=self._fds,
                preexec_fn=enter if (procs_files or uid is not None) else None,
                limit=1 << 20,
            )
        except OSError as exc:
            raise SandboxError(f"could not start bwrap: {exc}") from exc
        finally:
            log.close()
            for fd in self._fds:
                os.close(fd)
            self._fds = []
        assert self._proc.stdin is not None and self._proc.stdout is not None
        max_frame = (max(256 << 20, self.limits.max_output_bytes) * 4) // 3 + (1 << 20)
        return AgentConnection(FrameReader(self._proc.stdout), self._proc.stdin, max_frame)

    def _oom_kills(self) -> int | None:
        return self._cgroup.oom_kills() if self._cgroup else None

    async def _teardown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 10)
        if self._cgroup is not None:
            self._cgroup.kill_all()
        if self._closed:
            await self._release_host_state()

    async def _release_host_state(self) -> None:
        if self._cgroup is not None:
            await asyncio.to_thread(self._cgroup.remove)
            self._cgroup = None
        await self._workspace.remove()
        self._state = self._work = None
        _used_uids.discard(self.host_uid)

    def startup_log(self) -> str:
        """bwrap's own stderr (why a start failed)."""
        if self._state is None:
            return ""
        try:
            return (self._state / "bwrap.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""
