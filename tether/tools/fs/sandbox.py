"""Starting the sandbox an ``fs`` episode runs in: corpus read-only at ``/corpus``, writable ``/work``.

``open_fs_sandbox(corpus, work_dir=...)`` starts a sandbox from tether's registry (the
``sandbox_backend`` setting, default ``bwrap``) and bind-mounts the corpus read-only at
``/corpus``. A named session's ``/work`` lives on the host: its files are copied in at
start and ``save_workspace`` copies them back (regular files only) before closing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tether.errors import UserError
from tether.sandbox.base import Sandbox, SandboxError, SandboxLimits

CORPUS_ROOT = "/corpus"
WORK_ROOT = "/work"


async def open_fs_sandbox(
    corpus: Path | str | None,
    *,
    work_dir: Path | str | None = None,
    backend: str | None = None,
    limits: SandboxLimits | None = None,
) -> Sandbox:
    """A started sandbox with ``corpus`` mounted read-only at ``/corpus``.

    ``work_dir`` is a host folder whose files are the starting ``/work`` (for named
    sessions); call ``save_workspace`` before closing to write ``/work`` back to it.
    ``backend`` defaults to the ``sandbox_backend`` setting; the ``dummy`` fake is refused
    because it does not map ``/corpus``.
    """
    from tether.config import get_settings
    from tether.sandbox.registry import start_sandbox

    name = backend or get_settings().sandbox_backend
    if name == "dummy":
        raise UserError("The fs tools need a real sandbox backend (bwrap or docker), not 'dummy'.")
    options: dict[str, float] = {}
    if name == "bwrap":
        options["cpus"] = float(min(os.cpu_count() or 1, 2))  # ripgrep over a large corpus is parallel
    sandbox = await start_sandbox(name, limits, **options)
    try:
        if corpus is not None:
            try:
                await sandbox.put_dir(Path(corpus), CORPUS_ROOT, read_only=True)
            except SandboxError as exc:
                if readable_by_others(Path(corpus)):
                    raise
                raise UserError(
                    f"The sandbox cannot mount the corpus {str(corpus)!r}: it or a parent folder is not readable "
                    f"by other users (the sandbox runs as its own user); move it or chmod o+rx ({exc})."
                ) from None
        if work_dir is not None and Path(work_dir).is_dir() and any(Path(work_dir).iterdir()):
            await sandbox.put_dir(Path(work_dir), WORK_ROOT, read_only=False)
    except BaseException:
        await sandbox.close()
        raise
    return sandbox


def readable_by_others(path: Path) -> bool:
    """Whether ``path`` and every parent folder can be traversed (o+x) by other users."""
    for p in [path.resolve(), *path.resolve().parents]:
        try:
            if not p.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def shared_dir(path: Path) -> Path:
    """``path`` if other users can reach it, else a per-user folder under ``/var/tmp`` (mode 0755).

    Generated corpora must be readable by the sandbox's own user; a cache dir under a
    private home (``/root``) is not.
    """
    if readable_by_others(path.parent if not path.exists() else path):
        return path
    import tempfile

    base = Path(tempfile.gettempdir() if not Path("/var/tmp").is_dir() else "/var/tmp") / f"tether-{os.getuid()}"
    base.mkdir(mode=0o755, exist_ok=True)
    base.chmod(0o755)
    out = base / path.name
    out.mkdir(mode=0o755, exist_ok=True)
    return out


async def save_workspace(sandbox: Sandbox, host_dir: Path | str, max_bytes: int = 256 << 20) -> int:
    """Copy the sandbox's ``/work`` (regular files and folders; symlinks are dropped) to ``host_dir``.

    The folder is replaced only once the copy is complete. Returns the number of files.
    """
    host = Path(host_dir)
    res = await sandbox.exec(
        ["find", WORK_ROOT, "-mindepth", "1", "(", "-type", "d", "-printf", "d\t%P\n", ")", "-o",
         "(", "-type", "f", "-printf", "f\t%s\t%P\n", ")"]
    )  # fmt: skip
    if res.exit_code != 0 or res.truncated:
        raise SandboxError(f"could not list {WORK_ROOT} to save it: {res.stderr.strip()[:200]}")
    tmp = host.parent / f".{host.name}.saving-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    total = files = 0
    try:
        for line in res.stdout.splitlines():
            parts = line.split("\t")
            rel = parts[-1]
            if not rel or rel.startswith("/") or ".." in rel.split("/"):
                continue
            if parts[0] == "d":
                (tmp / rel).mkdir(parents=True, exist_ok=True)
                continue
            total += int(parts[1])
            if total > max_bytes:
                raise SandboxError(f"{WORK_ROOT} holds more than {max_bytes >> 20} MB; not saved")
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(await sandbox.read_file(f"{WORK_ROOT}/{rel}"))
            files += 1
        if host.exists():
            shutil.rmtree(host)
        tmp.rename(host)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files
