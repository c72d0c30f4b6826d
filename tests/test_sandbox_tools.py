"""shell/python tools on top of a sandbox: results, truncation notes, model errors."""

from __future__ import annotations

import pytest

from tether.errors import ToolError
from tether.sandbox.base import SandboxLimits
from tether.sandbox.registry import backend_unavailable, start_sandbox
from tether.tools.base import ToolSet
from tether.tools.shell import clip, shell_tools
from tether.types import ToolCall


@pytest.fixture(params=["dummy", "bwrap"])
async def sandbox(request: pytest.FixtureRequest):
    why = backend_unavailable(request.param)
    if why:
        pytest.skip(why)
    sb = await start_sandbox(request.param, SandboxLimits(timeout_s=10))
    yield sb
    await sb.close()


async def test_shell_and_python_run_in_the_sandbox(sandbox) -> None:
    shell, python = shell_tools(sandbox)
    assert [t.name for t in (shell, python)] == ["shell", "python"]
    assert "command" in shell.parameters["properties"]
    out = await shell.call({"command": "echo hi; echo err >&2; exit 3"})
    assert out.startswith("exit code: 3") and "stdout:\nhi" in out and "stderr:\nerr" in out
    out = await python.call({"code": "import sys\nprint(sum(range(10)))\nsys.exit(0)"})
    assert out == "exit code: 0\nstdout:\n45\n"


async def test_long_output_is_cut_with_a_note(sandbox) -> None:
    shell, _ = shell_tools(sandbox, max_chars=1000)
    out = await shell.call({"command": "seq 1 20000"})
    assert "truncated" in out and len(out) < 1300
    assert out.splitlines()[2] == "1" and out.rstrip().endswith("20000")


async def test_timeouts_and_model_mistakes_are_observations(sandbox) -> None:
    shell, python = shell_tools(sandbox, timeout=0.5)
    out = await shell.call({"command": "sleep 5"})
    assert "timeout" in out
    with pytest.raises(ToolError):
        await shell.call({"command": "   "})
    with pytest.raises(ToolError):
        await shell.call({"command": "ls", "cwd": "no/such/dir"})
    with pytest.raises(ToolError):
        await python.call({"source": "print(1)"})
    toolset = ToolSet(extra_tools=shell_tools(sandbox))
    result = await toolset.call(ToolCall(id="1", name="shell", arguments={"command": "ls", "cwd": "/etc"}))
    assert result.is_error and "not allowed" in result.content


def test_clip_keeps_head_and_tail() -> None:
    text = "".join(f"{i}\n" for i in range(1000))
    cut = clip(text, 100, "stdout")
    assert cut.startswith("0\n1\n") and cut.endswith("999\n") and "truncated" in cut
    assert clip("short", 100, "stdout") == "short"
