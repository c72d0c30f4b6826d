"""Tool sets by name, for ``tether tools list`` and ``tether tools call``.

Each entry names the ``ToolSet`` class (for schemas) and, for sets with per-session
state (indata tables, fs sandboxes), the module whose ``call_tool`` keeps that state
across separate processes under a ``--session`` name.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from tether.errors import UserError
from tether.tools.base import ToolSet
from tether.types import ToolCall

#: name -> ("module:ToolSetClass", "module:call_tool" or None, description)
TOOLSETS: dict[str, tuple[str, str | None, str]] = {
    "calc": ("tether.suites.calc:CalcTools", None, "arithmetic: add, sub, mul, div, finish"),
    "indata": (
        "tether.tools.indata.tools:InDataToolSet",
        "tether.tools.indata.cli:call_tool",
        "secure, verified data analysis over tables the model never sees raw",
    ),
    "fs": (
        "tether.tools.fs.tools:FsToolSet",
        "tether.tools.fs.cli:call_tool",
        "navigate a corpus laid out as files, inside a sandbox",
    ),
}


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def list_toolsets() -> dict[str, dict[str, Any]]:
    """Every available tool set with its description and tool schemas."""
    out: dict[str, dict[str, Any]] = {}
    for name, (cls_target, _, description) in TOOLSETS.items():
        try:
            cls: type[ToolSet] = _load(cls_target)
        except (ImportError, AttributeError):
            continue
        out[name] = {"description": description, "tools": cls.tool_schemas()}
    return out


async def call_tool(
    toolset: str,
    tool: str,
    arguments: dict[str, Any],
    *,
    dataset: str | None = None,
    corpus: Path | None = None,
    session: str | None = None,
) -> dict[str, Any]:
    """Call one tool; returns ``{"tool", "content", "is_error", "data"}``. ``UserError`` on a bad set."""
    entry = TOOLSETS.get(toolset)
    if entry is None:
        raise UserError(f"Unknown tool set {toolset!r}; known: {', '.join(TOOLSETS)}.")
    cls_target, call_target, _ = entry
    if call_target is None:
        instance: ToolSet = _load(cls_target)()
        async with instance:
            result = await instance.call(ToolCall(name=tool, arguments=arguments))
        return {"tool": tool, "content": result.content, "is_error": result.is_error, "data": result.data}
    try:
        call = _load(call_target)
    except (ImportError, AttributeError):
        raise UserError(f"Tool set {toolset!r} is not installed.") from None
    options: dict[str, Any] = {"session": session}
    if toolset == "indata":
        options["dataset"] = dataset
    elif toolset == "fs":
        if corpus is None:
            raise UserError("The fs tool set needs --corpus DIR.")
        options["corpus"] = corpus
    result_dict: dict[str, Any] = await call(tool, arguments, **options)
    return result_dict
