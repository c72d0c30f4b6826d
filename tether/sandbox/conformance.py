"""The conformance suite: what every ``Sandbox`` backend (the dummy included) must do.

Run it with ``tether sandbox check`` or ``await CONFORMANCE.run(sandbox_factory("bwrap"))``.
Commands use relative paths so the dummy (whose ``/work`` is a host temp folder) passes too.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from tether.sandbox.base import SandboxError, SandboxFileNotFound, SandboxPathError
from tether.sandbox.checks import CheckContext, CheckFailed, Suite, expect, show

CONFORMANCE = Suite("conformance")


@CONFORMANCE.check
async def exec_argv(ctx: CheckContext) -> str:
    """An argv command runs without a shell and returns its output and exit code 0."""
    r = await ctx.sandbox.exec(["echo", "hello", "$HOME"])
    expect(r.exit_code == 0 and r.stdout == "hello $HOME\n", show(r))
    expect(not (r.timed_out or r.truncated or r.oom_killed) and r.duration_ms > 0, show(r))
    return "argv ran verbatim"


@CONFORMANCE.check
async def exec_shell(ctx: CheckContext) -> str:
    """A string command runs under /bin/sh -c, with stdout and stderr kept apart."""
    r = await ctx.sandbox.exec("echo $((6 * 7)); echo oops >&2")
    expect(r.exit_code == 0 and r.stdout == "42\n" and r.stderr == "oops\n", show(r))
    return "sh -c with separate streams"


@CONFORMANCE.check
async def exit_codes(ctx: CheckContext) -> str:
    """Exit codes come back as they are; a missing program is 127; signals are 128+N."""
    for cmd, code in (("exit 7", 7), ("false", 1), ("kill -TERM $$", 143)):
        r = await ctx.sandbox.exec(cmd)
        expect(r.exit_code == code, f"{cmd!r}: expected {code}, got {show(r)}")
    r = await ctx.sandbox.exec(["no-such-program-xyz"])
    expect(r.exit_code == 127, f"missing program: {show(r)}")
    return "7, 1, 143, 127"


@CONFORMANCE.check
async def stdin(ctx: CheckContext) -> str:
    """stdin is fed as text or bytes (2 MB included); without stdin, reads see EOF."""
    r = await ctx.sandbox.exec(["cat"], stdin="line one\nline two\n")
    expect(r.stdout == "line one\nline two\n", show(r))
    big = bytes(range(256)) * 8192
    r = await ctx.sandbox.exec(["wc", "-c"], stdin=big)
    expect(r.stdout.strip() == str(len(big)), show(r))
    r = await ctx.sandbox.exec(["cat"], timeout=10)
    expect(r.exit_code == 0 and r.stdout == "" and not r.timed_out, f"no stdin: {show(r)}")
    return "text, 2 MB binary, EOF"


@CONFORMANCE.check
async def env(ctx: CheckContext) -> str:
    """Passed variables are set, and PATH/HOME are defined."""
    r = await ctx.sandbox.exec('echo "$FOO|$EMPTY|${HOME:+home}|${PATH:+path}"', env={"FOO": "bar baz", "EMPTY": ""})
    expect(r.stdout == "bar baz||home|path\n", show(r))
    r = await ctx.sandbox.exec("echo ${FOO:-unset}")
    expect(r.stdout == "unset\n", f"env leaked between calls: {show(r)}")
    return "set per call, not kept"


@CONFORMANCE.check
async def cwd(ctx: CheckContext) -> str:
    """Commands run in the workspace by default, or in ``cwd`` (relative or absolute)."""
    await ctx.sandbox.write_file("top.txt", "top")
    await ctx.sandbox.write_file("/work/sub/dir/inner.txt", "inner")
    r = await ctx.sandbox.exec(["cat", "top.txt"])
    expect(r.stdout == "top", f"default cwd: {show(r)}")
    for where in ("sub/dir", "/work/sub/dir"):
        r = await ctx.sandbox.exec(["cat", "inner.txt"], cwd=where)
        expect(r.stdout == "inner", f"cwd={where}: {show(r)}")
    try:
        await ctx.sandbox.exec(["true"], cwd="no/such/dir")
        raise CheckFailed("exec in a missing cwd did not raise SandboxFileNotFound")
    except SandboxFileNotFound:
        pass
    return "default /work, relative and absolute cwd, missing cwd raises"


@CONFORMANCE.check
async def binary_files(ctx: CheckContext) -> str:
    """Files round-trip byte for byte between the host and commands, both ways."""
    data = bytes(range(256)) * 4 + b"\r\n\x00end"
    await ctx.sandbox.write_file("bin/all.bin", data)
    expect(await ctx.sandbox.read_file("bin/all.bin") == data, "write_file/read_file changed the bytes")
    r = await ctx.sandbox.exec(["sh", "-c", "cat bin/all.bin > bin/copy.bin; printf '\\000\\377' > bin/two.bin"])
    expect(r.exit_code == 0, show(r))
    expect(await ctx.sandbox.read_file("/work/bin/copy.bin") == data, "a command's copy differs")
    expect(await ctx.sandbox.read_file("bin/two.bin") == b"\x00\xff", "printf bytes differ")
    await ctx.sandbox.write_file("bin/all.bin", "overwritten")
    expect(await ctx.sandbox.read_file("bin/all.bin") == b"overwritten", "overwrite failed")
    return "1 KiB of every byte value, both directions"


@CONFORMANCE.check
async def file_errors(ctx: CheckContext) -> str:
    """Missing files and paths outside the allowed folders raise the documented errors."""
    cases = [
        (ctx.sandbox.read_file("missing.txt"), SandboxFileNotFound),
        (ctx.sandbox.read_file("/etc/hostname"), SandboxPathError),
        (ctx.sandbox.read_file("../etc/passwd"), SandboxPathError),
        (ctx.sandbox.write_file("/usr/x", "x"), SandboxPathError),
        (ctx.sandbox.write_file("../../x", "x"), SandboxPathError),
        (ctx.sandbox.read_file(""), SandboxPathError),
    ]
    for coro, exc_type in cases:
        try:
            await coro
        except exc_type:
            continue
        except Exception as exc:
            raise CheckFailed(f"expected {exc_type.__name__}, got {type(exc).__name__}: {exc}") from exc
        raise CheckFailed(f"expected {exc_type.__name__}, nothing raised")
    await ctx.sandbox.exec(["mkdir", "-p", "adir"])
    try:
        await ctx.sandbox.read_file("adir")
        raise CheckFailed("reading a folder did not raise")
    except SandboxError:
        pass
    return "SandboxFileNotFound, SandboxPathError, SandboxError"


@CONFORMANCE.check
async def large_output(ctx: CheckContext) -> str:
    """Output under the cap comes back whole; over the cap it is cut and ``truncated`` is set."""
    cap = ctx.limits.max_output_bytes
    size = min(cap // 2, 400_000)
    r = await ctx.sandbox.exec(f"head -c {size} /dev/zero | tr '\\0' 'a'")
    expect(r.exit_code == 0 and len(r.stdout) == size and not r.truncated, f"{size} bytes: {show(r)}")
    r = await ctx.sandbox.exec(f"head -c {cap * 3} /dev/zero | tr '\\0' 'b'", timeout=30)
    expect(r.truncated and len(r.stdout) + len(r.stderr) <= cap, f"over the cap: {show(r)}")
    return f"{size} bytes whole; {3 * cap} cut to {len(r.stdout)}"


@CONFORMANCE.check
async def timeouts(ctx: CheckContext) -> str:
    """A command past its timeout is killed, reported, and the sandbox keeps working."""
    r = await ctx.sandbox.exec("echo before; sleep 30; echo after", timeout=1.0)
    expect(r.timed_out and "after" not in r.stdout, show(r))
    expect(r.duration_ms < 8000, f"took {r.duration_ms:.0f} ms to time out")
    expect("before" in r.stdout, f"output before the timeout was lost: {show(r)}")
    took = r.duration_ms
    r = await ctx.sandbox.exec(["echo", "alive"])
    expect(r.stdout == "alive\n" and not r.timed_out, f"after a timeout: {show(r)}")
    return f"killed after {took:.0f} ms; next call fine"


@CONFORMANCE.check
async def reset(ctx: CheckContext) -> str:
    """``reset`` wipes the workspace and /tmp and leaves a working sandbox."""
    await ctx.sandbox.write_file("keep/me.txt", "x")
    r = await ctx.sandbox.exec("echo t > ${TMPDIR:-/tmp}/tmpfile && mkdir -p d && chmod 000 d && echo ok")
    expect(r.stdout == "ok\n", show(r))
    await ctx.sandbox.reset()
    r = await ctx.sandbox.exec("ls -A . ; ls -A ${TMPDIR:-/tmp}")
    leftover = [x for x in r.stdout.split() if x != ".tmp"]
    expect(r.exit_code == 0 and not leftover, f"after reset: {show(r)}")
    try:
        await ctx.sandbox.read_file("keep/me.txt")
        raise CheckFailed("file survived reset")
    except SandboxFileNotFound:
        pass
    return "workspace and /tmp empty"


@CONFORMANCE.check
async def put_dir(ctx: CheckContext) -> str:
    """A host folder appears read-only at a target, or copied writable into the workspace."""
    with tempfile.TemporaryDirectory() as tmp:
        host = Path(tmp)
        host.chmod(0o755)
        (host / "docs").mkdir()
        (host / "docs" / "a.txt").write_text("alpha\n")
        (host / "b.bin").write_bytes(b"\x00\x01\x02")
        await ctx.sandbox.write_file("before.txt", "kept")
        await ctx.sandbox.put_dir(host, "/corpus", read_only=True)
        expect(await ctx.sandbox.read_file("/corpus/docs/a.txt") == b"alpha\n", "read-only put_dir: read_file")
        r = await ctx.sandbox.exec(["cat", "docs/a.txt"], cwd="/corpus")
        expect(r.stdout == "alpha\n", f"read-only put_dir: exec {show(r)}")
        expect(await ctx.sandbox.read_file("before.txt") == b"kept", "workspace lost by put_dir")
        try:
            await ctx.sandbox.write_file("/corpus/new.txt", "x")
            raise CheckFailed("write_file into a read-only put_dir succeeded")
        except SandboxPathError:
            pass
        await ctx.sandbox.put_dir(host, "proj", read_only=False)
        r = await ctx.sandbox.exec("cat proj/docs/a.txt && echo more >> proj/docs/a.txt && cat proj/docs/a.txt")
        expect(r.stdout == "alpha\nalpha\nmore\n", f"writable put_dir: {show(r)}")
        expect(await ctx.sandbox.read_file("proj/b.bin") == b"\x00\x01\x02", "writable put_dir: binary file")
        expect((host / "docs" / "a.txt").read_text() == "alpha\n", "the host folder was modified")
    return "read-only mount and writable copy; host folder untouched"


@CONFORMANCE.check
async def concurrency(ctx: CheckContext) -> str:
    """Concurrent calls on one sandbox and several sandboxes at once all get their own results."""
    results = await asyncio.gather(*(ctx.sandbox.exec(f"echo {i}; sleep 0.05") for i in range(8)))
    for i, r in enumerate(results):
        expect(r.stdout == f"{i}\n", f"call {i}: {show(r)}")
    others = await asyncio.gather(*(ctx.factory.start() for _ in range(3)))
    try:
        await asyncio.gather(*(sb.write_file("id.txt", str(i)) for i, sb in enumerate(others)))
        outs = await asyncio.gather(*(sb.exec(["cat", "id.txt"]) for sb in others))
        expect([o.stdout for o in outs] == ["0", "1", "2"], f"sandboxes mixed up: {[o.stdout for o in outs]}")
    finally:
        await asyncio.gather(*(sb.close() for sb in others))
    return "8 calls on one sandbox, 3 sandboxes side by side"


@CONFORMANCE.check
async def lifecycle(ctx: CheckContext) -> str:
    """Using a closed or never-started sandbox raises ``SandboxError``; close is idempotent."""
    fresh = ctx.factory.create() if hasattr(ctx.factory, "create") else None
    if fresh is not None:
        try:
            await fresh.exec(["true"])
            raise CheckFailed("exec on a sandbox that was never started did not raise")
        except SandboxError:
            pass
    await ctx.sandbox.close()
    await ctx.sandbox.close()
    try:
        await ctx.sandbox.exec(["true"])
        raise CheckFailed("exec after close did not raise")
    except SandboxError:
        pass
    return "SandboxError before start and after close"
