"""``shell(command)`` and ``python(code)`` tools that run in an episode's sandbox.

    tools = shell_tools(sandbox)            # -> [shell, python]
    toolset = MyToolSet(extra_tools=tools)

The model sees the exit code, stdout and stderr. Output longer than ``max_chars`` is
cut (head and tail kept) with a note saying how much was left out; a timeout, an
output-cap kill and an OOM kill are stated plainly.
"""

from __future__ import annotations

from typing import Any

from tether.errors import ToolError
from tether.sandbox.base import ExecResult, SandboxFileNotFound, SandboxPathError
from tether.tools.base import Tool

DEFAULT_MAX_CHARS = 8000


def clip(text: str, max_chars: int, label: str) -> str:
    """``text`` cut to ``max_chars`` (head and tail kept) with a note when it was cut."""
    if len(text) <= max_chars:
        return text
    head = max_chars * 3 // 5
    tail = max_chars - head
    omitted = len(text) - head - tail
    return (
        f"{text[:head]}\n[... {label} truncated: {omitted} of {len(text)} characters left out ...]\n"
        f"{text[len(text) - tail :] if tail else ''}"
    )


def render_exec(result: ExecResult, *, max_chars: int = DEFAULT_MAX_CHARS, timeout: float | None = None) -> str:
    """What the model sees of one command."""
    parts = [f"exit code: {result.exit_code}"]
    if result.timed_out:
        parts.append(f"note: the command was killed after {timeout or result.duration_ms / 1000:.0f} s (timeout)")
    if result.truncated:
        parts.append("note: the command printed more than the sandbox's output limit and was killed")
    if result.oom_killed:
        parts.append("note: the command ran out of memory and was killed")
    budget_out = max_chars if not result.stderr else max(max_chars * 2 // 3, max_chars - len(result.stderr))
    budget_err = max(max_chars - min(len(result.stdout), budget_out), 500)
    if result.stdout:
        parts.append("stdout:\n" + clip(result.stdout, budget_out, "stdout"))
    if result.stderr:
        parts.append("stderr:\n" + clip(result.stderr, budget_err, "stderr"))
    if not result.stdout and not result.stderr:
        parts.append("(no output)")
    return "\n".join(parts)


def shell_tools(sandbox: Any, *, max_chars: int = DEFAULT_MAX_CHARS, timeout: float | None = None) -> list[Tool]:
    """The ``shell`` and ``python`` tools bound to ``sandbox`` (a started ``Sandbox``)."""

    async def shell(command: str, cwd: str | None = None) -> str:
        """Run a shell command (/bin/sh -c) in your sandbox and show its exit code and output.

        The working folder is /work (yours to write); there is no network.

        Args:
            command: the command line, e.g. "ls -la" or "grep -rn TODO src | head"
            cwd: folder to run in, relative to /work or absolute (default /work)
        """
        if not command.strip():
            raise ToolError("command is empty; pass a shell command line such as 'ls -la'.")
        if "\x00" in command or (cwd and "\x00" in cwd):
            raise ToolError("command and cwd must not contain NUL characters.")
        try:
            result = await sandbox.exec(command, cwd=cwd, timeout=timeout)
        except SandboxPathError as exc:
            raise ToolError(f"cwd {cwd!r} is not allowed: {exc}") from None
        except SandboxFileNotFound:
            raise ToolError(f"cwd {cwd!r} does not exist") from None
        return render_exec(result, max_chars=max_chars, timeout=timeout)

    async def python(code: str) -> str:
        """Run a Python 3 program in your sandbox and show its exit code and output (print what you need).

        Args:
            code: the program's source, e.g. "print(sum(range(10)))"
        """
        if not code.strip():
            raise ToolError("code is empty; pass a Python 3 program that prints its result.")
        result = await sandbox.exec(["python3", "-"], stdin=code, timeout=timeout)
        return render_exec(result, max_chars=max_chars, timeout=timeout)

    return [Tool.from_function(shell), Tool.from_function(python)]
