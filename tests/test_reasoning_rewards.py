"""interleaved_reward: hand-worked cases for every branch (variants, gate, eps boundary, format, weights)."""

from __future__ import annotations

import pytest

from tether.training.rewards import (
    RewardBreakdown,
    first_steps,
    format_reward,
    gate_open,
    interleaved_reward,
    majority_vote,
    normalize_answer,
)


def resp(*answers: str) -> str:
    """A well-formed interleaved response whose answer blocks are ``answers`` (the last is the final)."""
    return "".join(f"<think>step {i}</think>\n<answer>{a}</answer>\n" for i, a in enumerate(answers, 1))


GOLD = ["a", "b", "c"]  # N - 1 = 3
# intermediate blocks x, a, c: a first at k=2, c first at k=3, b never -> not all correct
MIXED = resp("x", "a", "c", "f")
ALL = resp("a", "b", "c", "f")


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize(
    ("variant", "intermediate"),
    [
        ("time_discounted", 0.5 / 3 * (1 / 2 + 1 / 3)),  # 0.138888…
        ("partial", 0.5 / 3 * 2),
        ("all_or_none", 0.0),
    ],
)
def test_variants_on_partly_correct_intermediate_answers(variant: str, intermediate: float) -> None:
    r = interleaved_reward(MIXED, GOLD, "f", variant=variant)  # type: ignore[arg-type]
    assert (r.format, r.final) == (1.0, 2.0)
    assert r.intermediate == approx(intermediate)
    assert r.total == approx(3.0 + intermediate)
    assert r.first_steps == (2, None, 3) and r.correct_intermediate == 2 and r.gate_open


@pytest.mark.parametrize("variant", ["time_discounted", "partial", "all_or_none"])
def test_all_intermediate_answers_correct_pays_the_base(variant: str) -> None:
    r = interleaved_reward(ALL, GOLD, "f", variant=variant)  # type: ignore[arg-type]
    assert dict(r) == {"format": 1.0, "final": 2.0, "intermediate": 0.5, "total": 3.5}


def test_time_discounted_all_correct_is_not_discounted_even_when_late() -> None:
    r = interleaved_reward(resp("x", "y", "a", "b", "c", "f"), GOLD, "f")
    assert r.first_steps == (3, 4, 5)
    assert r.intermediate == 0.5


def test_time_discount_uses_the_first_block_matching_each_gold_answer() -> None:
    # gold a, b; blocks z, b, b -> b first at k=2; a never
    r = interleaved_reward(resp("z", "b", "b", "fin"), ["a", "b"], "fin")
    assert r.first_steps == (None, 2)
    assert r.intermediate == approx(0.5 / 2 * (1 / 2))
    # order of gold answers does not matter, only where each first appears
    r = interleaved_reward(resp("b", "b", "a", "fin"), ["a", "b"], "fin")
    assert r.first_steps == (3, 1) and r.intermediate == 0.5


def test_the_final_block_is_not_an_intermediate_answer() -> None:
    # gold intermediate "c" only appears in the final block: not correct
    r = interleaved_reward(resp("a", "b", "c"), GOLD, "c", variant="partial")
    assert r.n_intermediate == 2 and r.first_steps == (1, 2, None)
    assert r.intermediate == approx(0.5 / 3 * 2)


def test_think_answer_response_gets_no_intermediate_reward() -> None:
    r = interleaved_reward("<think>all the reasoning</think><answer>f</answer>", GOLD, "f")
    assert dict(r) == {"format": 1.0, "final": 2.0, "intermediate": 0.0, "total": 3.0}


def test_wrong_final_answer_closes_the_gate() -> None:
    r = interleaved_reward(resp("a", "b", "c", "g"), GOLD, "f")
    assert dict(r) == {"format": 1.0, "final": -1.5, "intermediate": 0.0, "total": -0.5}
    assert r.final_correct is False and not r.gate_open


@pytest.mark.parametrize("final_block", ["", "   ", "?!", "..."])
def test_unparseable_final_answer(final_block: str) -> None:
    r = interleaved_reward(resp("a", "b", "c", final_block), GOLD, "f")
    assert dict(r) == {"format": 1.0, "final": -2.0, "intermediate": 0.0, "total": -1.0}
    assert r.final_correct is None


@pytest.mark.parametrize(
    "response",
    [
        "<think>a</think><answer>a</answer><answer>f</answer>",  # two answers in a row
        "<think>a</think><answer>f</answer> and some text",  # text outside tags
        "<think>a<answer>f</answer></think>",  # nesting
        "<think>a</think><answer>f",  # unclosed
        "the answer is f",  # no tags at all
        "<answer>f</answer>",  # does not start with think
    ],
)
def test_invalid_format_gets_minus_one_and_no_final_or_intermediate(response: str) -> None:
    r = interleaved_reward(response, [], "f")
    assert dict(r) == {"format": -1.0, "final": 0.0, "intermediate": 0.0, "total": -1.0}
    assert r.problems and not r.format_valid
    assert format_reward(response)[0] == -1.0


def test_invalid_format_with_correct_everything_pays_no_intermediate() -> None:
    response = resp("a", "b", "c", "f") + "trailing text"
    r = interleaved_reward(response, GOLD, "f")
    assert dict(r) == {"format": -1.0, "final": 0.0, "intermediate": 0.0, "total": -1.0}


@pytest.mark.parametrize(
    ("batch_acc", "prev_batch_acc", "eps", "is_open"),
    [
        (None, None, 0.05, True),  # no batch figures: open
        (0.5, None, 0.05, True),  # no previous batch: open
        (None, 0.5, 0.05, True),
        (0.9, 0.8, 0.05, True),  # improved
        (0.8, 0.8, 0.05, True),  # equal
        (0.75, 0.8, 0.05, True),  # exactly at prev - eps: open (boundary)
        (0.15, 0.2, 0.05, True),  # boundary where 0.2 - 0.05 rounds up to 0.15000000000000002
        (0.7499, 0.8, 0.05, False),  # just below the boundary
        (0.7, 0.8, 0.05, False),  # dropped more than eps
        (0.7, 0.8, 0.1, True),  # a larger eps tolerates it
        (0.7, 0.8, 0.0, False),
    ],
)
def test_gate_on_batch_accuracy(
    batch_acc: float | None, prev_batch_acc: float | None, eps: float, is_open: bool
) -> None:
    r = interleaved_reward(ALL, GOLD, "f", batch_acc=batch_acc, prev_batch_acc=prev_batch_acc, eps=eps)
    assert r.gate_open is is_open
    assert r.intermediate == (0.5 if is_open else 0.0)
    assert r.final == 2.0 and r.format == 1.0  # the gate only affects the intermediate part
    assert r.total == (3.5 if is_open else 3.0)


def test_gate_function_needs_valid_format_and_correct_final() -> None:
    assert gate_open(True, True, None, None)
    assert not gate_open(False, True, None, None)
    assert not gate_open(True, False, None, None)
    assert not gate_open(True, None, None, None)


def test_weights_scale_the_parts_into_the_total_only() -> None:
    td = 0.5 / 3 * (1 / 2 + 1 / 3)
    r = interleaved_reward(MIXED, GOLD, "f", weights={"format": 0.5, "final": 2.0, "intermediate": 4.0})
    assert (r.format, r.final) == (1.0, 2.0) and r.intermediate == approx(td)  # parts stay unweighted
    assert r.total == approx(0.5 * 1 + 2.0 * 2 + 4.0 * td)
    r = interleaved_reward(resp("a", "b", "c", "g"), GOLD, "f", weights={"final": 0.0})
    assert r.total == 1.0  # missing weights default to 1; final weighted to 0
    with pytest.raises(ValueError, match="unknown reward weights"):
        interleaved_reward(ALL, GOLD, "f", weights={"style": 1.0})


def test_no_gold_intermediate_answers_means_no_intermediate_reward() -> None:
    for variant in ("time_discounted", "partial", "all_or_none"):
        r = interleaved_reward(resp("a", "f"), [], "f", variant=variant)  # type: ignore[arg-type]
        assert r.intermediate == 0.0 and r.total == 3.0


def test_final_answer_matches_after_normalisation() -> None:
    assert interleaved_reward(resp("The Euro."), [], "the euro").final == 2.0
    assert interleaved_reward(resp("1,000"), [], "1000").final == 2.0
    assert interleaved_reward(resp("3.0"), [], "3").final == 2.0
    assert interleaved_reward(resp("three"), [], "3").final == 2.0
    assert interleaved_reward(resp("-3"), [], "3").final == -1.5  # the sign is kept
    # intermediate answers are normalised too
    r = interleaved_reward(resp("A!", "b.", "C", "f"), GOLD, "f")
    assert r.first_steps == (1, 2, 3)


def test_a_judge_replaces_exact_match() -> None:
    def judge(answer: str, gold: str) -> bool | None:
        return None if answer == "?" else answer.startswith(gold)

    assert interleaved_reward(resp("forty-two"), [], "forty", judge=judge).final == 2.0
    assert interleaved_reward(resp("no"), [], "forty", judge=judge).final == -1.5
    assert interleaved_reward(resp("?"), [], "forty", judge=judge).final == -2.0


def test_breakdown_behaves_like_a_mapping() -> None:
    r = interleaved_reward(ALL, GOLD, "f")
    assert isinstance(r, RewardBreakdown)
    assert list(r) == ["format", "final", "intermediate", "total"] and len(r) == 4
    assert r["total"] == r.total == 3.5
    assert r.as_dict() == dict(r)
    assert r == {"format": 1.0, "final": 2.0, "intermediate": 0.5, "total": 3.5}  # compares as a mapping
    assert r == pytest.approx({"format": 1.0, "final": 2.0, "intermediate": 0.5, "total": 3.5})
    assert r != {"format": 1.0, "final": 2.0, "intermediate": 0.0, "total": 3.0}
    assert r == interleaved_reward(ALL, GOLD, "f") and r != interleaved_reward(MIXED, GOLD, "f")
    with pytest.raises(KeyError):
        r["problems"]


def test_unknown_variant_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        interleaved_reward(ALL, GOLD, "f", variant="bogus")  # type: ignore[arg-type]


def test_tool_calls_in_thinking_keep_the_format_valid() -> None:
    response = '<think>let me check <tool_call>{"name": "f", "arguments": {}}</tool_call></think><answer>f</answer>'
    assert interleaved_reward(response, [], "f").format == 1.0


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("The answer: 3.0.", "the answer 3"),
        ("1,000 apples", "1000 apples"),
        ("-0.50", "-0.5"),
        ("+2", "2"),
        ("-0", "0"),
        ("Three", "3"),
        ("[1, 2, 3]", "1 2 3"),
        ("Benjamin is a saint.", "benjamin is a saint"),
        ("  Paris!\n", "paris"),
        ("1e3", "1000"),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, norm: str) -> None:
    assert normalize_answer(text) == norm


def test_first_steps_ignore_empty_gold() -> None:
    assert first_steps(["", "a"], ["", "a"]) == [None, 2]


def test_majority_vote() -> None:
    assert majority_vote(["Paris", "paris.", "Lyon"]) == "paris"
    assert majority_vote(["1", "2", "2.0", "1"]) == "1"  # tie: first seen
    assert majority_vote(["", "  ", "?"]) == ""
    assert majority_vote([]) == ""
