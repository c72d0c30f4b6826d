"""The streaming <think>/<answer> parser: hand cases for every defect, and fuzzing with hypothesis."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.agents.tags import TagParser, parse_response


def feed_pieces(text: str, cuts: list[int]) -> tuple[list[str], list[str], TagParser]:
    """Feed ``text`` split at ``cuts``; return (answers emitted by feed, problems, parser)."""
    parser = TagParser()
    emitted: list[str] = []
    last = 0
    for cut in sorted(set(cuts)) + [len(text)]:
        emitted += parser.feed(text[last:cut])
        last = cut
    report = parser.close()
    return emitted, report.problems, parser


def test_well_formed_interleaved_response() -> None:
    text = "<think>a</think>\n<answer>Paris</answer> <think>b</think><answer> France </answer>\n"
    report = parse_response(text)
    assert report.ok and report.problems == []
    assert report.answers == ["Paris", "France"]
    assert report.first_answer_char == text.index("Paris")
    assert [b.kind for b in report.top_level()] == ["think", "answer", "think", "answer"]


def test_answer_is_emitted_the_moment_it_closes() -> None:
    parser = TagParser()
    assert parser.feed("<think>x</think><answer>4") == []
    assert parser.feed("2</answ") == []  # the closing tag is still incomplete
    assert parser.feed("er>") == ["42"]
    assert parser.feed("<think>y</think><answer>7</answer><think>") == ["7"]


def test_tags_split_at_every_position_give_the_same_result() -> None:
    text = "<think>a < b</think><answer>x</answer><think>c</think><answer>y</answer>"
    for cut in range(len(text) + 1):
        emitted, problems, _ = feed_pieces(text, [cut])
        assert emitted == ["x", "y"] and problems == []
    emitted, problems, _ = feed_pieces(text, list(range(len(text))))  # one character at a time
    assert emitted == ["x", "y"] and problems == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hi <think>a</think><answer>1</answer>", ["text outside <think>/<answer> tags at char 0: 'hi'."]),
        (
            "<think>a</think><answer>1</answer> trailing",
            ["text outside <think>/<answer> tags at char 35: 'trailing'."],
        ),
        ("<think>a</think><answer>1", ["<answer> opened at char 16 is never closed."]),
        (
            "<think>a<answer>1</answer></think>",
            [
                "<answer> at char 8 is nested inside <think> opened at char 0.",
                "the response ends with <think> at char 0, not with an <answer>.",
            ],
        ),
        (
            "<think>a</think><answer>1<think>b</think>2</answer>",
            ["<think> at char 25 is nested inside <answer> opened at char 16."],
        ),
        (
            "<think>a</think></think><answer>1</answer>",
            ["</think> at char 16 closes nothing (no <think> is open)."],
        ),
        (
            "<think>a<answer>1</think></answer>",
            [
                "<answer> at char 8 is nested inside <think> opened at char 0.",
                "</think> at char 17 closes <think> while <answer> opened at char 8 is still open.",
                "</answer> at char 25 closes nothing (no <answer> is open).",
                "the response ends with <think> at char 0, not with an <answer>.",
            ],
        ),
        ("<answer>1</answer>", ["the response starts with <answer> at char 0, not with <think>."]),
        (
            "<think>a</think><think>b</think><answer>1</answer>",
            ["two <think> blocks in a row (chars 0 and 16): <think> and <answer> must alternate."],
        ),
        (
            "<think>a</think><answer>1</answer><answer>2</answer>",
            ["two <answer> blocks in a row (chars 16 and 34): <think> and <answer> must alternate."],
        ),
        (
            "<think>a</think><answer>1</answer><think>b</think>",
            ["the response ends with <think> at char 34, not with an <answer>."],
        ),
        ("just text", ["text outside <think>/<answer> tags at char 0: 'just text'.",
                       "no <think> or <answer> block found."]),
        ("", ["no <think> or <answer> block found."]),
        ("<THINK>a</THINK>", ["text outside <think>/<answer> tags at char 0: '<THINK>a</THINK>'.",
                              "no <think> or <answer> block found."]),
    ],
)  # fmt: skip
def test_every_defect_is_reported_exactly(text: str, expected: list[str]) -> None:
    report = parse_response(text)
    assert report.problems == expected
    assert not report.ok


def test_unclosed_or_broken_answers_are_not_emitted() -> None:
    assert parse_response("<think>a</think><answer>1").answers == []
    # an answer cut off by a mismatched close is never emitted
    assert parse_response("<think>a<answer>1</think>").answers == []


def test_think_nested_in_answer_is_not_part_of_the_answer() -> None:
    assert parse_response("<think>a</think><answer>1<think>b</think>2</answer>").answers == ["12"]


def test_tool_calls_are_neutral_except_inside_answers() -> None:
    # a tool turn: thinking, then a call; no answer needed
    turn = '<think>I need the sum.</think>\n<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>'
    report = parse_response(turn)
    assert report.ok and report.tool_calls == 1 and report.answers == []
    # a call inside a think block is fine; its JSON is opaque, even when it holds tag-like text
    inside = '<think>x <tool_call>{"name": "f", "arguments": {"s": "<answer>no</answer>"}}</tool_call></think>'
    report = parse_response(inside + "<answer>5</answer>")
    assert report.ok and report.answers == ["5"]
    # a call inside an answer is a defect
    bad = parse_response('<think>x</think><answer>5 <tool_call>{"name": "f"}</tool_call></answer>')
    assert bad.answers == ["5"]
    assert bad.problems == ["<tool_call> at char 26 is nested inside <answer> opened at char 16."]
    unclosed = parse_response("<think>x</think><tool_call>{")
    assert unclosed.problems == ["<tool_call> opened at char 16 is never closed."]


def test_think_answer_mode_expects_one_pair() -> None:
    text = "<think>a</think><answer>1</answer><think>b</think><answer>2</answer>"
    assert parse_response(text).ok
    report = parse_response(text, expect_pairs=1)
    assert report.problems == ["expected 1 <think> block and 1 <answer> block, got 2 and 2."]


def test_close_is_idempotent_and_feed_after_close_fails() -> None:
    parser = TagParser()
    parser.feed("<think>a</think><answer>1</answer>")
    assert parser.close() is parser.close()
    with pytest.raises(RuntimeError):
        parser.feed("x")


# ----- fuzzing -----

PIECES = [
    "<think>", "</think>", "<answer>", "</answer>", "<tool_call>", "</tool_call>",
    "x", "42", " ", "\n", "<", ">", "</", "<thi", "nk>", "answer>", "a<b", "</ans", "<think", "{\"n\": 1}",
]  # fmt: skip
soup = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)
TEXT = r"(?:(?!</?(?:think|answer|tool_call)>).)*"
VALID = re.compile(rf"\s*(?:<think>{TEXT}</think>\s*<answer>{TEXT}</answer>\s*)+", re.DOTALL)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=soup, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_fuzz_pieces_match_whole_and_defects_are_reported(text: str, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c <= len(text)]
    whole = parse_response(text)
    emitted, problems, _ = feed_pieces(text, cuts)
    # identical whether fed at once or in pieces
    assert emitted == whole.answers
    assert problems == whole.problems
    # problems are reported exactly when the text is not the valid format (tool calls aside)
    if "<tool_call>" not in text and "</tool_call>" not in text:
        assert whole.ok == bool(VALID.fullmatch(text)), (text, whole.problems)
    # every emitted answer comes from a closed answer block
    assert len(whole.answers) <= text.count("</answer>")


valid_pair = st.tuples(st.text(alphabet="ab <>\n", max_size=8), st.text(alphabet="xy 1<", max_size=6)).map(
    lambda p: f"<think>{p[0]}</think><answer>{p[1]}</answer>"
)
valid_text = st.lists(valid_pair, min_size=1, max_size=4).map("".join)


@settings(max_examples=200, deadline=None)
@given(text=valid_text, data=st.data())
def test_fuzz_any_single_corruption_is_reported(text: str, data: st.DataObject) -> None:
    assert parse_response(text).ok
    tags = [m for m in re.finditer(r"</?(?:think|answer)>", text)]
    kind = data.draw(st.sampled_from(["drop", "duplicate", "prefix", "suffix"]))
    if kind in ("drop", "duplicate"):
        m = data.draw(st.sampled_from(tags))
        tag = m.group(0)
        replacement = "" if kind == "drop" else tag + tag
        broken = text[: m.start()] + replacement + text[m.end() :]
    elif kind == "prefix":
        broken = "stray " + text
    else:
        broken = text + " stray"
    report = parse_response(broken)
    assert report.problems, broken
