"""Per-sandbox cgroups (v1 or v2) for process, memory and CPU limits, when we may create them.

RLIMIT_NPROC does not bind processes that map to host root and RLIMIT_AS is per
process, so as root each sandbox also gets its own cgroup: ``pids.max``, a memory
limit (swap included where the kernel allows it) whose OOM kills are counted, and a
CPU quota of ``cpus`` cores. Without permission to create cgroups, ``SandboxCgroup.create``
returns ``None`` and the rlimits are the only limits.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "tether"
_collected = False


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def collect_stale_cgroups() -> int:
    """Remove empty ``tether/bwrap-<uid>-<pid>`` cgroups whose creating process is gone."""
    removed = 0
    for d in ROOT.glob(f"*/{PREFIX}/bwrap-*-*"):
        pid = d.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        with contextlib.suppress(OSError):
            d.rmdir()  # fails (and is kept) while processes remain in it
            removed += 1
    return removed


class SandboxCgroup:
    """The cgroup(s) of one sandbox; ``attach(pid)`` must run before the sandbox forks."""

    def __init__(self, dirs: list[Path], version: int) -> None:
        self.dirs = dirs
        self.version = version

    @classmethod
    def create(cls, name: str, *, memory_mb: int, max_processes: int, cpus: float = 1.0) -> SandboxCgroup | None:
        """Create the cgroup ``tether/<name>``; ``None`` when cgroups cannot be managed here."""
        if os.geteuid() != 0:
            return None
        global _collected
        if not _collected:
            _collected = True
            collect_stale_cgroups()
        mem = str(memory_mb << 20)
        if (ROOT / "cgroup.controllers").exists():  # pure v2
            base = ROOT / PREFIX
            try:
                base.mkdir(exist_ok=True)
                _write(ROOT / "cgroup.subtree_control", "+pids +memory +cpu")
                _write(base / "cgroup.subtree_control", "+pids +memory +cpu")
                d = base / name
                d.mkdir()
            except OSError:
                return None
            ok = _write(d / "pids.max", str(max_processes)) and _write(d / "memory.max", mem)
            _write(d / "memory.swap.max", "0")
            _write(d / "cpu.max", f"{int(cpus * 100000)} 100000")
            group = cls([d], 2)
            if not ok:
                group.remove()
                return None
            return group
        dirs: list[Path] = []
        try:
            for ctl in ("pids", "memory", "cpu"):
                if not (ROOT / ctl / "tasks").exists():
                    if ctl == "cpu":
                        continue
                    raise OSError(f"no {ctl} controller")
                d = ROOT / ctl / PREFIX / name
                d.mkdir(parents=True)
                dirs.append(d)
        except OSError:
            cls(dirs, 1).remove()
            return None
        group = cls(dirs, 1)
        ok = _write(dirs[0] / "pids.max", str(max_processes))
        ok = ok and _write(dirs[1] / "memory.limit_in_bytes", mem)
        _write(dirs[1] / "memory.memsw.limit_in_bytes", mem)
        _write(dirs[1] / "memory.swappiness", "0")
        if len(dirs) > 2:
            _write(dirs[2] / "cpu.cfs_period_us", "100000")
            _write(dirs[2] / "cpu.cfs_quota_us", str(int(cpus * 100000)))
        if not ok:
            group.remove()
            return None
        return group

    def attach(self, pid: int = 0) -> None:
        """Move ``pid`` (0: the caller) into every controller of this cgroup."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid or os.getpid()))

    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` paths (written by a launcher before it execs the sandbox)."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def oom_kills(self) -> int | None:
        """How many processes the kernel OOM-killed in this cgroup so far."""
        for d in self.dirs:
            for fname in ("memory.events", "memory.oom_control"):
                f = d / fname
                if f.exists():
                    with contextlib.suppress(OSError, ValueError):
                        for line in f.read_text().splitlines():
                            key, _, value = line.partition(" ")
                            if key == "oom_kill":
                                return int(value)
        return None

    def kill_all(self) -> None:
        """SIGKILL every process still in the cgroup."""
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                for line in (d / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(line), 9)

    def remove(self) -> None:
        """Kill what is left and remove the cgroup directories (retrying briefly)."""
        self.kill_all()
        for d in reversed(self.dirs):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill_all()
                    time.sleep(0.02)


def docker_oom_kills(container_id: str) -> int | None:
    """OOM kills in a docker container's memory cgroup (cgroupfs driver, v1 or v2), if readable."""
    for f in (
        ROOT / "memory" / "docker" / container_id / "memory.oom_control",
        ROOT / "docker" / container_id / "memory.events",
        ROOT / "system.slice" / f"docker-{container_id}.scope" / "memory.events",
    ):
        if f.exists():
            with contextlib.suppress(OSError, ValueError):
                for line in f.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
    return None
