"""The host folders that back a sandbox's ``/work`` and ``/tmp`` (kept across sandbox restarts).

As root both live on one size-capped tmpfs owned by the sandbox's uid, so a model
cannot fill the host disk or memory past ``workspace_mb``; otherwise plain temp folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_collected = False


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (on this host's pid namespace)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def collect_stale_workspaces() -> int:
    """Unmount and delete workspaces left by tether processes that died without closing them.

    Only folders named ``tether-<backend>-<pid>-*`` in the temp dir whose pid is gone are
    touched; runs once per process. Returns how many were removed.
    """
    global _collected
    if _collected:
        return 0
    _collected = True
    removed = 0
    for state in Path(tempfile.gettempdir()).glob("tether-*-*-*"):
        m = re.fullmatch(r"tether-(bwrap|docker)-(\d+)-.+", state.name)
        if not m or int(m.group(2)) == os.getpid() or pid_alive(int(m.group(2))):
            continue
        fs = state / "fs"
        if os.path.ismount(fs):
            subprocess.run(["umount", "-l", str(fs)], capture_output=True, check=False)
        if not os.path.ismount(fs):
            with contextlib.suppress(OSError):
                shutil.rmtree(state)
                removed += 1
    return removed


class HostWorkspace:
    """A private host folder for one sandbox's workspace."""

    def __init__(self, uid: int, size_mb: int, prefix: str = "tether-sandbox-") -> None:
        self.uid = uid
        self.size_mb = size_mb
        self.prefix = prefix
        self.state: Path | None = None
        self.work: Path | None = None
        self.tmp: Path | None = None
        self.fs: Path | None = None
        self.mounted = False

    async def create(self) -> Path:
        """Create (once) and return the workspace folder (``self.tmp`` is the /tmp folder)."""
        if self.work is not None:
            return self.work
        collect_stale_workspaces()
        state = Path(tempfile.mkdtemp(prefix=f"{self.prefix}{os.getpid()}-"))
        state.chmod(0o711)
        fs = state / "fs"
        fs.mkdir(mode=0o711)
        if os.geteuid() == 0:
            opts = f"size={self.size_mb}m,nr_inodes=262144,mode=0711,nosuid,nodev"
            proc = await asyncio.create_subprocess_exec(
                "mount", "-t", "tmpfs", "-o", opts, "tether-work", str(fs),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            self.mounted = await proc.wait() == 0
        work, tmp = fs / "work", fs / "tmp"
        work.mkdir(mode=0o700)
        tmp.mkdir()
        tmp.chmod(0o1777)
        if os.geteuid() == 0:
            os.chown(work, self.uid, self.uid)
            os.chown(tmp, self.uid, self.uid)
        self.state, self.fs, self.work, self.tmp = state, fs, work, tmp
        return work

    async def remove(self) -> None:
        """Unmount and delete the workspace (idempotent)."""
        if self.state is None:
            return
        if self.mounted and self.fs is not None:
            proc = await asyncio.create_subprocess_exec(
                "umount", "-l", str(self.fs),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await proc.wait()
            self.mounted = False
        await asyncio.to_thread(shutil.rmtree, self.state, True)
        self.state = self.fs = self.work = self.tmp = None
