"""tether's tool-call format: schemas into the prompt, ``<tool_call>`` blocks back out.

Any chat model can call tools this way. The model writes

    <tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>

and ``parse_tool_calls`` turns the text into validated ``ToolCall`` objects plus a list
of problems (each becomes a ``ToolError`` observation for the model).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from tether.errors import ToolError
from tether.tools.base import Tool, ToolSet
from tether.types import ToolCall

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(r"<tool_call>(.*?)(</tool_call>|$)", re.DOTALL)


def render_tools_prompt(tools: list[Tool]) -> str:
    """The system-prompt section that offers ``tools`` and explains the call format."""
    lines = [
        "You can call tools. To call a tool, write exactly one line:",
        '<tool_call>{"name": "TOOL_NAME", "arguments": {...}}</tool_call>',
        "Wait for the result before calling the next tool. Available tools (JSON schemas):",
    ]
    for t in tools:
        lines.append(json.dumps(t.schema(), ensure_ascii=False))
    return "\n".join(lines)


@dataclass
class ParsedCalls:
    """The result of parsing one model turn."""

    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> bool:
        """Whether the turn tried to call any tool (valid or not)."""
        return bool(self.calls or self.errors)


def parse_tool_calls(text: str, toolset: ToolSet | None = None) -> ParsedCalls:
    """Parse every ``<tool_call>`` block in ``text`` strictly.

    A block must be closed and hold a JSON object with a string ``name`` and an object
    ``arguments``; with ``toolset`` the name must exist and the arguments validate.
    """
    out = ParsedCalls()
    for n, m in enumerate(_BLOCK.finditer(text), 1):
        body, closed = m.group(1).strip(), bool(m.group(2))
        where = f"tool call {n}"
        if not closed:
            out.errors.append(f"{where} is not closed: end it with {CLOSE}.")
            continue
        try:
            obj = json.loads(body)
        except json.JSONDecodeError as exc:
            out.errors.append(f"{where} is not valid JSON ({exc.msg} at char {exc.pos}).")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            out.errors.append(f'{where} must be a JSON object with a string "name".')
            continue
        args = obj.get("arguments", {})
        if not isinstance(args, dict):
            out.errors.append(f'{where}: "arguments" must be a JSON object.')
            continue
        extra = set(obj) - {"name", "arguments"}
        if extra:
            out.errors.append(f"{where} has unexpected keys {sorted(extra)}; use only name and arguments.")
            continue
        if toolset is not None:
            try:
                toolset.get(obj["name"]).validate(args)
            except ToolError as exc:
                out.errors.append(f"{where}: {exc}")
                continue
        out.calls.append(ToolCall(name=obj["name"], arguments=args))
    return out


def format_tool_call(name: str, arguments: dict[str, object]) -> str:
    """Render a call in tether's format (used by scripted policies and tests)."""
    return f"{OPEN}{json.dumps({'name': name, 'arguments': arguments})}{CLOSE}"
