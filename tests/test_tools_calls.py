"""Tool schemas come from signatures and docstrings; the call parser is strict."""

from __future__ import annotations

import pytest

from tether.errors import ToolError
from tether.suites.calc import CalcTools, evaluate, parse_number
from tether.tools.base import Tool, ToolSet, parse_docstring, tool
from tether.tools.calls import format_tool_call, parse_tool_calls, render_tools_prompt
from tether.types import ToolCall


class Demo(ToolSet):
    name = "demo"

    @tool
    async def greet(self, who: str, times: int = 1, loud: bool = False) -> str:
        """Greet someone.

        Args:
            who: the name to greet
            times: how many times
                (at least once)
            loud: shout it
        """
        return ("HI " if loud else "hi ") * times + who

    @tool(terminal=True)
    async def done(self, answer: str) -> str:
        """Finish.

        Args:
            answer: the answer
        """
        return answer


def test_schema_is_generated_from_signature_and_docstring() -> None:
    schema = Demo().get("greet").schema()
    assert schema["description"] == "Greet someone."
    props = schema["parameters"]["properties"]
    assert props["who"] == {"type": "string", "description": "the name to greet"}
    assert props["times"]["type"] == "integer" and props["times"]["default"] == 1
    assert props["times"]["description"] == "how many times (at least once)"
    assert schema["parameters"]["required"] == ["who"]
    assert schema["parameters"]["additionalProperties"] is False
    assert Demo.tool_schemas() == [t.schema() for t in Demo().tools()]


def test_docstring_parser_stops_at_next_section() -> None:
    desc, params = parse_docstring("Do it.\n\nArgs:\n    x: an x\n\nReturns:\n    y: not a param\n")
    assert desc == "Do it." and params == {"x": "an x"}


async def test_toolset_call_turns_errors_into_observations() -> None:
    ts = Demo()
    ok = await ts.call(ToolCall(name="greet", arguments={"who": "bo", "times": 2}))
    assert ok.content == "hi hi bo" and not ok.is_error
    bad = await ts.call(ToolCall(name="greet", arguments={"who": "bo", "times": "many", "x": 1}))
    assert bad.is_error and "times" in bad.content and "unknown argument 'x'" in bad.content
    unknown = await ts.call(ToolCall(name="nope", arguments={}))
    assert unknown.is_error and "Available tools: greet, done" in unknown.content
    assert ts.get("done").terminal and not ts.get("greet").terminal


async def test_tool_error_raised_by_a_tool_is_an_observation() -> None:
    result = await CalcTools().call(ToolCall(name="div", arguments={"a": 1, "b": 0}))
    assert result.is_error and "division by zero" in result.content


def test_non_async_function_is_refused() -> None:
    def sync(x: int) -> int:
        return x

    with pytest.raises(TypeError):
        tool(sync)


def test_parser_accepts_valid_calls_and_reports_every_defect() -> None:
    ts = Demo()
    text = (
        "thinking... " + format_tool_call("greet", {"who": "a"})
        + ' <tool_call>{"name": "greet", "arguments": {"who": 3}}</tool_call>'
        + " <tool_call>{not json}</tool_call>"
        + ' <tool_call>{"name": "zap", "arguments": {}}</tool_call>'
        + ' <tool_call>["x"]</tool_call>'
        + ' <tool_call>{"name": "greet", "arguments": [1]}</tool_call>'
        + ' <tool_call>{"name": "greet", "arguments": {"who": "b"}, "extra": 1}</tool_call>'
        + ' <tool_call>{"name": "greet", "arguments": {"who": "c"}}'
    )
    parsed = parse_tool_calls(text, ts)
    assert [c.arguments for c in parsed.calls] == [{"who": "a"}]
    assert len(parsed.errors) == 7
    assert "tool call 2" in parsed.errors[0] and "who" in parsed.errors[0]
    assert "not valid JSON" in parsed.errors[1]
    assert "unknown tool 'zap'" in parsed.errors[2]
    assert "string \"name\"" in parsed.errors[3]
    assert '"arguments" must be a JSON object' in parsed.errors[4]
    assert "unexpected keys ['extra']" in parsed.errors[5]
    assert "not closed" in parsed.errors[6]


def test_plain_text_is_no_attempt() -> None:
    parsed = parse_tool_calls("The answer is 4.")
    assert not parsed.attempted


def test_tools_prompt_lists_every_schema() -> None:
    prompt = render_tools_prompt(CalcTools().tools())
    for name in ("add", "sub", "mul", "div", "finish"):
        assert f'"name": "{name}"' in prompt
    assert "<tool_call>" in prompt


def test_tool_from_plain_function() -> None:
    async def shout(text: str) -> str:
        """Shout.

        Args:
            text: what to shout
        """
        return text.upper()

    t = Tool.from_function(shout)
    assert t.name == "shout" and t.parameters["properties"]["text"]["description"] == "what to shout"
    with pytest.raises(ToolError):
        t.validate({})


def test_calc_helpers() -> None:
    assert evaluate("12*7-5") == 79.0
    assert evaluate("(2+3)*-4/8") == -2.5
    with pytest.raises(ValueError):
        evaluate("__import__('os')")
    assert parse_number("so it is 1,234.5 then") == 1234.5
    assert parse_number("none") is None
