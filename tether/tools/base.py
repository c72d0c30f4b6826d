"""Tools and tool sets.

A tool is a typed async function. Its JSON schema is generated from the signature and
the docstring (never written by hand): the first docstring paragraph is the
description and a Google-style ``Args:`` section describes each parameter.

    class Calc(ToolSet):
        name = "calc"

        @tool
        async def add(self, a: float, b: float) -> float:
            '''Add two numbers.

            Args:
                a: the first number
                b: the second number
            '''
            return a + b

A ``ToolSet`` is built fresh for every episode (it may own per-episode state such as a
sandbox or table handles) and is used as ``async with``.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo

from tether.errors import ToolError
from tether.types import ToolCall, ToolResult

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_MARK = "__tether_tool__"


@dataclass(frozen=True)
class _ToolMark:
    name: str | None
    terminal: bool


def tool(fn: F | None = None, *, name: str | None = None, terminal: bool = False) -> Any:
    """Mark an async function (or ``ToolSet`` method) as a tool.

    ``terminal=True`` marks a tool whose call ends the episode; its return value is the
    final answer.
    """

    def mark(f: F) -> F:
        if not inspect.iscoroutinefunction(f):
            raise TypeError(f"tool {getattr(f, '__name__', f)} must be an async function")
        setattr(f, _MARK, _ToolMark(name=name, terminal=terminal))
        return cast(F, f)

    return mark(fn) if fn is not None else mark


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {param: description})."""
    if not doc:
        return "", {}
    doc = inspect.cleandoc(doc)
    parts = re.split(r"\n\s*(?:Args|Arguments|Parameters):\s*\n", doc, maxsplit=1)
    description = parts[0].strip()
    params: dict[str, str] = {}
    if len(parts) == 2:
        current: str | None = None
        for line in parts[1].splitlines():
            if re.match(r"^\S", line) and line.rstrip().endswith(":"):
                break  # next section (Returns:, Raises:)
            m = re.match(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            if m and (current is None or len(line) - len(line.lstrip()) <= 4):
                current = m.group(1)
                params[current] = m.group(2).strip()
            elif current and line.strip():
                params[current] += " " + line.strip()
    return description, params


class _ArgsBase(BaseModel):
    model_config = ConfigDict(extra="forbid")


_ARGS_CACHE: dict[tuple[Any, str], type[BaseModel]] = {}
_SCHEMA_CACHE: dict[type[BaseModel], dict[str, Any]] = {}


def args_model_for(fn: Callable[..., Any], model_name: str) -> type[BaseModel]:
    """The pydantic model of ``fn``'s arguments (``self`` excluded) with docstring descriptions (cached)."""
    key = (fn, model_name)
    cached = _ARGS_CACHE.get(key)
    if cached is None:
        cached = _ARGS_CACHE[key] = _build_args_model(fn, model_name)
    return cached


def _build_args_model(fn: Callable[..., Any], model_name: str) -> type[BaseModel]:
    _, param_docs = parse_docstring(fn.__doc__)
    hints = inspect.get_annotations(fn, eval_str=True)
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(fn).parameters.items():
        if pname == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(pname, Any)
        default = param.default
        if isinstance(default, FieldInfo):
            info = default
            if info.description is None and pname in param_docs:
                info.description = param_docs[pname]
        else:
            info = FieldInfo(
                default=... if default is inspect.Parameter.empty else default,
                description=param_docs.get(pname),
            )
        fields[pname] = (annotation, info)
    return create_model(model_name, __base__=_ArgsBase, **fields)


@dataclass
class Tool:
    """A callable tool with a generated JSON schema."""

    name: str
    description: str
    fn: Callable[..., Awaitable[Any]]
    args_model: type[BaseModel]
    terminal: bool = False

    @classmethod
    def from_function(
        cls, fn: Callable[..., Awaitable[Any]], *, name: str | None = None, terminal: bool = False
    ) -> Tool:
        """Build a tool from a typed async function (bound methods included)."""
        target = getattr(fn, "__func__", fn)
        tool_name = name or target.__name__
        description, _ = parse_docstring(target.__doc__)
        model = args_model_for(target, f"{tool_name}_args")
        return cls(name=tool_name, description=description, fn=fn, args_model=model, terminal=terminal)

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments (built once per argument model)."""
        schema = _SCHEMA_CACHE.get(self.args_model)
        if schema is None:
            schema = self.args_model.model_json_schema()
            schema.pop("title", None)
            for prop in schema.get("properties", {}).values():
                prop.pop("title", None)
            _SCHEMA_CACHE[self.args_model] = schema
        return schema

    def schema(self) -> dict[str, Any]:
        """``{"name", "description", "parameters"}`` as offered to the model."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def validate(self, arguments: dict[str, Any]) -> BaseModel:
        """Validate arguments; raises ``ToolError`` describing every problem."""
        try:
            return self.args_model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(describe_validation_error(self, exc)) from None

    async def call(self, arguments: dict[str, Any]) -> Any:
        """Validate ``arguments`` and run the tool; raises ``ToolError``."""
        validated = self.validate(arguments)
        kwargs = {k: getattr(validated, k) for k in type(validated).model_fields}
        return await self.fn(**kwargs)


def describe_validation_error(tool: Tool, exc: ValidationError) -> str:
    """Turn a pydantic error into one teaching message for the model."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown argument {loc!r}")
        elif err["type"] == "missing":
            problems.append(f"missing argument {loc!r}")
        else:
            problems.append(f"{loc}: {err['msg']}")
    expected = ", ".join(tool.parameters.get("properties", {}))
    return f"invalid arguments for {tool.name}: {'; '.join(problems)}. Expected arguments: {expected or 'none'}."


def render_result(value: Any) -> str:
    """The text a tool's return value shows the model."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False, default=str)


class ToolSet:
    """A named set of tools for one episode; subclass and mark methods with ``@tool``.

    ``extra_tools`` adds standalone tools (e.g. sandbox ``shell``/``python``).
    Override ``__aenter__``/``__aexit__`` (calling super) to manage per-episode resources.
    """

    name: str = "tools"
    instructions: str = ""

    def __init__(self, extra_tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for cls in reversed(type(self).__mro__):
            for attr, value in vars(cls).items():
                mark = getattr(value, _MARK, None)
                if isinstance(mark, _ToolMark):
                    bound = getattr(self, attr)
                    t = Tool.from_function(bound, name=mark.name, terminal=mark.terminal)
                    self._tools[t.name] = t
        for t in extra_tools or []:
            self._tools[t.name] = t

    @classmethod
    def tool_schemas(cls) -> list[dict[str, Any]]:
        """The schemas of the ``@tool`` methods, without building an instance."""
        schemas: dict[str, dict[str, Any]] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                mark = getattr(value, _MARK, None)
                if isinstance(mark, _ToolMark):
                    t = Tool.from_function(value, name=mark.name, terminal=mark.terminal)
                    schemas[t.name] = t.schema()
        return list(schemas.values())

    def tools(self) -> list[Tool]:
        """Every tool in this set."""
        return list(self._tools.values())

    def get(self, name: str) -> Tool:
        """The tool called ``name``; raises ``ToolError`` listing the available tools."""
        t = self._tools.get(name)
        if t is None:
            raise ToolError(f"unknown tool {name!r}. Available tools: {', '.join(self._tools)}.")
        return t

    def add(self, t: Tool) -> None:
        """Add a tool to this set."""
        self._tools[t.name] = t

    async def call(self, call: ToolCall) -> ToolResult:
        """Run one call; a ``ToolError`` becomes an error result, never an exception."""
        start = time.perf_counter()
        try:
            value = await self.get(call.name).call(call.arguments)
            content, is_error, data = render_result(value), False, value
        except ToolError as exc:
            content, is_error, data = f"ToolError: {exc}", True, None
        return ToolResult(
            call_id=call.id,
            name=call.name,
            content=content,
            is_error=is_error,
            data=_jsonable(data),
            duration_ms=(time.perf_counter() - start) * 1000,
        )

    async def __aenter__(self) -> ToolSet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)
