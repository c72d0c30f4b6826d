"""Structured-output constraints that keep a model turn to "free text, or valid tool calls".

vLLM (xgrammar) supports *structural tags*: the model writes free text until it emits a
trigger string; from there the output must be one of the declared structures (a fixed
``begin``, a JSON value valid for ``schema``, a fixed ``end``), after which free text
resumes. With tether's call format

    <tool_call>{"name": "add", "arguments": {...}}</tool_call>

one structure per offered tool (``begin`` fixes the tool name, ``schema`` is the tool's
argument schema) means an invalid tool call cannot be sampled, while a plain answer can.
The same payload serves the OpenAI-compatible server (``response_format``) and the
in-process engine (``StructuredOutputsParams(structural_tag=...)``).
"""

from __future__ import annotations

import json
from typing import Any

from tether.tools.calls import CLOSE, OPEN

TRIGGER = OPEN


def _begin(name: str) -> str:
    return f'{OPEN}{{"name": {json.dumps(name)}, "arguments": '


def tool_call_structural_tag(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The structural-tag response format for ``tools`` (``Tool.schema()`` dicts).

    Raises ``ValueError`` when ``tools`` is empty or a schema has no ``name``.
    """
    if not tools:
        raise ValueError("a tool-call constraint needs at least one tool schema")
    structures = []
    for schema in tools:
        name = schema.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"tool schema without a name: {schema!r}")
        parameters = schema.get("parameters") or {"type": "object", "properties": {}}
        structures.append({"begin": _begin(name), "schema": parameters, "end": "}" + CLOSE})
    return {"type": "structural_tag", "structures": structures, "triggers": [TRIGGER]}


def structural_tag_json(tools: list[dict[str, Any]]) -> str:
    """``tool_call_structural_tag`` serialized the way vLLM's ``StructuredOutputsParams`` expects."""
    return json.dumps(tool_call_structural_tag(tools))
