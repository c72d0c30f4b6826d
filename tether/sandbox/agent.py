"""The in-sandbox agent: runs commands and file operations on the host's behalf.

This file runs INSIDE the sandbox (bwrap or docker) with the sandbox user's rights,
under any ``python3`` >= 3.8, using only the standard library. It is not imported by
tether: backends start it as ``python3 -I -S agent.py [--root DIR] [--sweep]``.

Protocol: the host writes frames to the agent's stdin and reads frames from its stdout.
A frame is a 4-byte big-endian length followed by a UTF-8 JSON object. Requests are
handled one at a time; each gets exactly one response ``{"ok": true, ...}`` or
``{"ok": false, "kind": "path"|"notfound"|"error", "error": "..."}``.

The agent is inside the trust boundary of the sandbox: the host treats everything it
says as untrusted input (sizes are bounded, types checked). It makes itself
non-dumpable so that the sandboxed commands (same uid) cannot ptrace it or open its
pipes through ``/proc``.

``--sweep`` kills every process the agent may signal (``kill(-1, SIGKILL)``) after each
command; it is only honoured when the agent does not run as uid 0, and is meant for
backends where the agent is alone in a pid namespace.
"""

import base64
import json
import os
import posixpath
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import time

WORK = "/work"
READ_ROOTS = ["/work", "/tmp"]
WRITE_ROOTS = ["/work", "/tmp"]
HOST_ROOT = None  # dummy mode: the host folder that stands for /work
MAPS: dict = {}  # dummy mode: sandbox folder -> host folder
SWEEP = False


def _no_dump():
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass


def read_frame(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">I", head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return json.loads(body.decode("utf-8"))


def write_frame(stream, obj):
    body = json.dumps(obj).encode("utf-8")
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


class PathRefused(Exception):
    pass


def _under(path, roots):
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def virtual(path, roots):
    """Normalise a sandbox path (relative = under /work) and check it stays in ``roots``."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise PathRefused("path must be a non-empty string")
    full = posixpath.normpath(posixpath.join(WORK, path))
    if full.startswith("//"):
        full = "/" + full.lstrip("/")
    if not _under(full, roots):
        raise PathRefused("path {!r} is outside the allowed folders {}".format(path, ", ".join(roots)))
    return full


def to_real(vpath):
    """Map a sandbox path to this process's file system (identity except in dummy mode)."""
    if HOST_ROOT is None:
        return vpath
    for virt, host in MAPS.items():
        if vpath == virt or vpath.startswith(virt + "/"):
            return host + vpath[len(virt) :]
    if vpath == WORK:
        return HOST_ROOT
    if vpath.startswith(WORK + "/"):
        return HOST_ROOT + vpath[len(WORK) :]
    if vpath == "/tmp" or vpath.startswith("/tmp/"):
        return HOST_ROOT + "/.tmp" + vpath[4:]
    return vpath


def checked_real(path, roots):
    """The real path of ``path`` after following symlinks; it must stay inside ``roots``."""
    vpath = virtual(path, roots)
    real = to_real(vpath)
    resolved = os.path.realpath(real)
    real_roots = [os.path.realpath(to_real(r)) for r in roots]
    if not _under(resolved, real_roots):
        raise PathRefused(f"path {path!r} resolves outside the allowed folders")
    return resolved


def op_read(req):
    real = checked_real(req["path"], READ_ROOTS)
    limit = int(req.get("max_bytes", 64 << 20))
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        return {"ok": False, "kind": "notfound", "error": "no such file: {}".format(req["path"])}
    try:
        import stat

        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return {"ok": False, "kind": "error", "error": "not a regular file: {}".format(req["path"])}
        if st.st_size > limit:
            return {"ok": False, "kind": "error", "error": f"file is larger than {limit} bytes"}
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return {"ok": True, "data": base64.b64encode(b"".join(chunks)).decode("ascii")}


def op_write(req):
    vpath = virtual(req["path"], WRITE_ROOTS)
    parent = checked_real(posixpath.dirname(vpath) or "/", WRITE_ROOTS)
    os.makedirs(parent, exist_ok=True)
    real = os.path.join(parent, posixpath.basename(vpath))
    if os.path.islink(real):
        os.unlink(real)  # never write through a symlink
    data = base64.b64decode(req["data"])
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(real, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)
    return {"ok": True}


def _wipe(folder):
    if not os.path.isdir(folder):
        return
    for dirpath, dirnames, _ in os.walk(folder):
        for d in dirnames:
            try:
                p = os.path.join(dirpath, d)
                if not os.path.islink(p):
                    os.chmod(p, 0o700)
            except OSError:
                pass
    for name in os.listdir(folder):
        p = os.path.join(folder, name)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        except OSError:
            pass


def sweep():
    if SWEEP and os.getuid() != 0:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    reap()


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def op_reset(req):
    sweep()
    for root in req.get("wipe", [WORK, "/tmp"]):
        real = to_real(root)
        if HOST_ROOT is not None and not (real == HOST_ROOT or real.startswith(HOST_ROOT + "/")):
            continue  # dummy mode: never wipe a host folder outside the sandbox's own
        try:  # a command may have chmod-ed the folder itself
            os.chmod(real, 0o1777 if root == "/tmp" and HOST_ROOT is None else 0o700)
        except OSError:
            pass
        _wipe(real)
    if HOST_ROOT is not None:
        os.makedirs(HOST_ROOT + "/.tmp", exist_ok=True)
    return {"ok": True}


CPU_LIMIT = None


def set_own_limits(limits):
    """Apply CPU, address-space, file-size and process limits to the agent; every command inherits them.

    RLIMIT_CPU counts each process's own CPU time, so every command gets the full budget;
    the agent asks the host to recycle it once it has used half of that budget itself.
    """
    global CPU_LIMIT
    CPU_LIMIT = limits.get("cpu")
    import resource

    names = {
        "as": "RLIMIT_AS",
        "fsize": "RLIMIT_FSIZE",
        "nproc": "RLIMIT_NPROC",
        "core": "RLIMIT_CORE",
        "cpu": "RLIMIT_CPU",
        "nofile": "RLIMIT_NOFILE",
    }
    for key, value in limits.items():
        what = getattr(resource, names.get(key, ""), None)
        if what is not None and value is not None:
            try:
                resource.setrlimit(what, (int(value), int(value)))
            except (ValueError, OSError):
                pass


def op_exec(req):
    argv = req["argv"]
    env = {str(k): str(v) for k, v in (req.get("env") or {}).items()}
    cwd = checked_real(req.get("cwd") or WORK, READ_ROOTS)
    if not os.path.isdir(cwd):
        return {"ok": False, "kind": "notfound", "error": "no such folder: {}".format(req.get("cwd"))}
    stdin = base64.b64decode(req["stdin"]) if req.get("stdin") is not None else None
    timeout = float(req.get("timeout", 30.0))
    cap = int(req.get("max_output", 1_000_000))
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError, OSError) as exc:
        msg = "{}: {}\n".format(argv[0] if argv else "", exc.strerror or exc)
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        return {
            "ok": True,
            "exit_code": code,
            "stdout": "",
            "stderr": b64(msg.encode()),
            "timed_out": False,
            "truncated": False,
            "signal": None,
            "duration_ms": (time.monotonic() - start) * 1000,
        }
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    fd_out, fd_err = proc.stdout.fileno(), proc.stderr.fileno()
    out = {fd_out: bytearray(), fd_err: bytearray()}
    done = {}
    for f in (proc.stdout, proc.stderr):
        os.set_blocking(f.fileno(), False)
        sel.register(f.fileno(), selectors.EVENT_READ)
    pending = memoryview(stdin) if stdin else None
    fd_in = proc.stdin.fileno() if proc.stdin is not None else -1
    if proc.stdin is not None:
        os.set_blocking(fd_in, False)
        if pending:
            sel.register(fd_in, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
    try:
        pidfd = os.pidfd_open(proc.pid)
        sel.register(pidfd, selectors.EVENT_READ)
    except (AttributeError, OSError):
        pidfd = None
    deadline = start + timeout
    timed_out = truncated = False
    total = 0
    exited = False
    drain_until = None
    while out or not exited:
        now = time.monotonic()
        if drain_until is None and now >= deadline:
            timed_out = True
            break
        if drain_until is not None and now >= drain_until:
            break
        wait = (drain_until or deadline) - now
        if pidfd is None and not exited:
            wait = min(wait, 0.01)
        events = sel.select(max(0.0, wait))
        if pidfd is None and not exited and proc.poll() is not None:
            exited = True
            _after_exit(proc)
            drain_until = time.monotonic() + 0.5
        for key, _ in events:
            fd = key.fd
            if fd == pidfd:
                sel.unregister(pidfd)
                os.close(pidfd)
                pidfd = -1
                exited = True
                _after_exit(proc)
                drain_until = time.monotonic() + 0.5
            elif fd == fd_in and pending is not None:
                try:
                    n = os.write(fd, pending[:65536])
                    pending = pending[n:]
                except (BrokenPipeError, BlockingIOError, OSError) as exc:
                    if isinstance(exc, BlockingIOError):
                        continue
                    pending = None
                if pending is None or not len(pending):
                    sel.unregister(fd)
                    os.close(fd)
                    proc.stdin = None
                    pending = None
            elif fd in out:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    done[fd] = out.pop(fd)
                    continue
                room = cap - total
                out[fd] += chunk[: max(0, room)]
                total += len(chunk)
                if total > cap:
                    truncated = True
        if truncated:
            break
    for fd, buf in out.items():
        done[fd] = buf
        try:
            sel.unregister(fd)
        except (KeyError, ValueError):
            pass
    _kill_group(proc)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    sweep()
    if pidfd not in (None, -1):
        os.close(pidfd)
    streams: list = [proc.stdout, proc.stderr, proc.stdin]
    for f in streams:
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
    reap()
    rc = proc.returncode
    sig = None
    if rc is None:
        rc, sig = 137, 9
    elif rc < 0:
        sig = -rc
        rc = 128 + sig
    stdout = bytes(done.get(fd_out, b""))
    stderr = bytes(done.get(fd_err, b""))
    return {
        "ok": True,
        "exit_code": rc,
        "stdout": b64(stdout),
        "stderr": b64(stderr),
        "timed_out": timed_out,
        "truncated": truncated,
        "signal": sig,
        "duration_ms": (time.monotonic() - start) * 1000,
    }


def b64(data):
    return base64.b64encode(data).decode("ascii")


def _after_exit(proc):
    """The command exited: keep its status, then kill what it left behind so its pipes close."""
    proc.poll()
    _kill_group(proc)
    if SWEEP and os.getuid() != 0:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def own_cpu():
    t = os.times()
    return t.user + t.system


def op_pack(req):
    """A tar of the given sandbox folders (symlinks kept as links), to carry them over a restart."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for root in req.get("roots", [WORK]):
            real = to_real(root)
            if os.path.isdir(real):
                for name in sorted(os.listdir(real)):
                    tar.add(os.path.join(real, name), arcname=root.strip("/") + "/" + name)
    return {"ok": True, "data": b64(buf.getvalue())}


def op_unpack(req):
    """Extract a ``pack`` tar under / (only its /work and /tmp members)."""
    import io
    import tarfile

    data = base64.b64decode(req["data"])
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        members = [m for m in tar.getmembers() if m.name.split("/")[0] in ("work", "tmp") and ".." not in m.name]
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(to_real("/"), members=members, filter="tar")
        else:  # python < 3.11.4: members were checked above
            tar.extractall(to_real("/"), members=members)
    return {"ok": True}


def handle(req):
    op = req.get("op")
    if op == "ping":
        return {"ok": True, "pid": os.getpid(), "uid": os.getuid()}
    if op == "exec":
        return op_exec(req)
    if op == "read":
        return op_read(req)
    if op == "write":
        return op_write(req)
    if op == "reset":
        return op_reset(req)
    if op == "pack":
        return op_pack(req)
    if op == "unpack":
        return op_unpack(req)
    return {"ok": False, "kind": "error", "error": f"unknown op {op!r}"}


def main(args):
    global HOST_ROOT, SWEEP
    i = 0
    while i < len(args):
        if args[i] == "--root":
            HOST_ROOT = os.path.realpath(args[i + 1])
            os.makedirs(HOST_ROOT + "/.tmp", exist_ok=True)
            i += 2
        elif args[i] == "--map":
            MAPS[args[i + 1]] = os.path.realpath(args[i + 2])
            READ_ROOTS.append(args[i + 1])
            i += 3
        elif args[i] == "--limits":
            set_own_limits(json.loads(args[i + 1]))
            i += 2
        elif args[i] == "--sweep":
            SWEEP = True
            i += 1
        elif args[i] == "--read-root":
            READ_ROOTS.append(args[i + 1])
            i += 2
        elif args[i] == "--write-root":
            WRITE_ROOTS.append(args[i + 1])
            READ_ROOTS.append(args[i + 1])
            i += 2
        else:
            i += 1
    _no_dump()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    # Nothing else may write to the protocol stream.
    sys.stdout = sys.stderr
    while True:
        req = read_frame(stdin)
        if req is None:
            return 0
        try:
            resp = handle(req)
        except PathRefused as exc:
            resp = {"ok": False, "kind": "path", "error": str(exc)}
        except FileNotFoundError as exc:
            resp = {"ok": False, "kind": "notfound", "error": str(exc)}
        except Exception as exc:  # reported to the host, which raises SandboxError
            resp = {"ok": False, "kind": "error", "error": f"{type(exc).__name__}: {exc}"}
        if CPU_LIMIT and own_cpu() > CPU_LIMIT / 2:
            resp["recycle"] = True
        write_frame(stdout, resp)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
