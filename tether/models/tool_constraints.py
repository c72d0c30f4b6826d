"""Structured-output constraints that keep a model turn to "free text, or valid tool calls".

vLLM (xgrammar) supports *structural tags*. In ``triggered_tags`` form the model writes
free text until it emits a trigger string; from there the output must be one of the
declared tags (a fixed ``begin``, a JSON value valid for a schema, a fixed ``end``),
after which free text resumes. With tether's call format

    <tool_call>{"name": "add", "arguments": {...}}</tool_call>

one tag per offered tool (``begin`` fixes the tool name, the content is the tool's
argument schema) means an invalid tool call cannot be sampled, while a plain answer can
(``tool_choice="auto"``). ``tool_choice="required"`` makes the turn exactly one valid
call (``tags_with_separator``, at least one, stop after the first), for models that
would otherwise never call a tool.
The same payload serves the OpenAI-compatible server (``response_format``) and the
in-process engine (``StructuredOutputsParams(structural_tag=...)``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from tether.tools.calls import CLOSE, OPEN

TRIGGER = OPEN
ToolChoice = Literal["auto", "required"]


def _begin(name: str) -> str:
    return f'{OPEN}{{"name": {json.dumps(name)}, "arguments": '


def tool_call_tags(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One structural-tag ``tag`` per tool: the fixed call prefix naming it, its argument schema, the close."""
    if not tools:
        raise ValueError("a tool-call constraint needs at least one tool schema")
    tags = []
    for schema in tools:
        name = schema.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"tool schema without a name: {schema!r}")
        parameters = schema.get("parameters") or {"type": "object", "properties": {}}
        tags.append(
            {
                "type": "tag",
                "begin": _begin(name),
                "content": {"type": "json_schema", "json_schema": parameters},
                "end": "}" + CLOSE,
            }
        )
    return tags


def resolve_tool_choice(
    constrained: bool | str | None, *, default: bool, default_choice: ToolChoice
) -> ToolChoice | None:
    """The constraint of one call: None (off), ``auto`` or ``required``.

    ``constrained`` None means the backend's ``default``; True means ``default_choice``.
    Raises ``ModelError`` for any other value.
    """
    from tether.errors import ModelError

    if constrained is None:
        constrained = default
    if constrained is False:
        return None
    if constrained is True:
        return default_choice
    if constrained == "auto":
        return "auto"
    if constrained == "required":
        return "required"
    raise ModelError(f"constrained must be a bool, 'auto' or 'required', not {constrained!r}.")


def tool_call_structural_tag(tools: list[dict[str, Any]], tool_choice: ToolChoice = "auto") -> dict[str, Any]:
    """The ``response_format`` that constrains a turn to the offered ``tools`` (``Tool.schema()`` dicts).

    ``auto``: free text, in which every ``<tool_call>`` must be a valid call (the model may
    answer in plain text). ``required``: the turn is exactly one valid call. Raises
    ``ValueError`` when ``tools`` is empty or a schema has no ``name``.
    """
    tags = tool_call_tags(tools)
    if tool_choice == "required":
        fmt: dict[str, Any] = {
            "type": "tags_with_separator",
            "tags": tags,
            "separator": "\n",
            "at_least_one": True,
            "stop_after_first": True,
        }
    elif tool_choice == "auto":
        fmt = {"type": "triggered_tags", "triggers": [TRIGGER], "tags": tags, "at_least_one": False}
    else:
        raise ValueError(f"tool_choice must be 'auto' or 'required', not {tool_choice!r}")
    return {"type": "structural_tag", "format": fmt}


def structural_tag_json(tools: list[dict[str, Any]], tool_choice: ToolChoice = "auto") -> str:
    """``tool_call_structural_tag`` serialized the way vLLM's ``StructuredOutputsParams`` expects."""
    return json.dumps(tool_call_structural_tag(tools, tool_choice))
