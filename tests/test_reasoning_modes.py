"""Reasoning modes: instructions, final answers, metrics, and the modes inside the agent loop."""

from __future__ import annotations

import pytest

import tether
from tether.agents.interleaved import (
    INTERLEAVED_INSTRUCTION,
    InterleavedMode,
    ThinkAnswerMode,
    token_position,
)
from tether.agents.reasoning import PlainMode, get_reasoning_mode
from tether.errors import UserError
from tether.models.scripted import ScriptedModel
from tether.store import open_store
from tether.suites.reasoning import MultiHopSuite
from tether.types import IntermediateAnswer


def utf8(ids: list[int]) -> str:
    return bytes(ids).decode("utf-8", errors="ignore")


def test_registry() -> None:
    assert isinstance(get_reasoning_mode("plain"), PlainMode)
    assert isinstance(get_reasoning_mode("interleaved"), InterleavedMode)
    assert isinstance(get_reasoning_mode("think-answer"), ThinkAnswerMode)
    with pytest.raises(UserError, match="Unknown reasoning mode"):
        get_reasoning_mode("zigzag")


def test_instructions() -> None:
    text = get_reasoning_mode("interleaved").instruction()
    assert text == INTERLEAVED_INSTRUCTION
    assert "share partial answers within <answer></answer> as soon as you become confident" in text
    baseline = get_reasoning_mode("think-answer").instruction()
    assert "<think>" in baseline and "<answer>" in baseline and "partial" not in baseline
    assert get_reasoning_mode("plain").instruction() == ""


def test_final_answer_is_the_last_closed_answer_block() -> None:
    mode = InterleavedMode()
    assert mode.final_answer("<think>a</think><answer>1</answer><think>b</think><answer> 2 </answer>") == "2"
    assert mode.final_answer("<think>a</think><answer>1</answer><think>b</think><answer>2") == "1"
    assert mode.final_answer("no tags at all") is None
    assert PlainMode().final_answer("  42 \n") == "42"


def test_interleaved_metrics_on_characters_tokens_and_ms() -> None:
    response = "<think>ab</think><answer>X</answer><think>cdef</think><answer>Y</answer>"
    first = response.index("X")  # 25
    m = InterleavedMode().metrics(response, 0, 123.0, token_ids=list(response.encode()), decode=utf8)
    assert m["ttfa_fraction"] == pytest.approx(first / len(response))
    assert m["ttfa_token_fraction"] == pytest.approx(first / len(response))  # one byte per token
    assert m["ttfa_ms"] == 123.0
    assert (m["n_answers"], m["n_intermediate"], m["format_error"]) == (2.0, 1.0, 0.0)


def test_token_fraction_counts_tokens_not_characters() -> None:
    # tokens of very different lengths: the answer starts in token 2 of 4
    pieces = ["<think>" + "x" * 50 + "</think>", "<answer>", "A</answer>", "z"]
    vocab = {i: p for i, p in enumerate(pieces)}
    response = "".join(pieces)
    m = InterleavedMode().metrics(
        response, 4, None, token_ids=[0, 1, 2, 3], decode=lambda ids: "".join(vocab[i] for i in ids)
    )
    assert m["ttfa_token_fraction"] == 2 / 4
    assert m["ttfa_fraction"] == pytest.approx(response.index("A") / len(response))
    assert "ttfa_ms" not in m
    assert token_position([0, 1, 2, 3], lambda ids: "".join(vocab[i] for i in ids), 0) == 0
    assert token_position([0, 1], lambda ids: "".join(vocab[i] for i in ids), 10_000) == 2


def test_no_answer_counts_as_the_whole_response() -> None:
    m = ThinkAnswerMode().metrics("<think>still thinking", 3, None)
    assert m["ttfa_fraction"] == 1.0 and m["n_answers"] == 0.0 and m["format_error"] == 1.0


def test_think_answer_mode_flags_more_than_one_answer() -> None:
    response = "<think>a</think><answer>1</answer><think>b</think><answer>2</answer>"
    assert ThinkAnswerMode().metrics(response, 0, None)["format_error"] == 1.0
    assert InterleavedMode().metrics(response, 0, None)["format_error"] == 0.0


# ----- inside the agent -----


async def test_interleaved_episode_streams_intermediate_answers_and_stores_metrics() -> None:
    suite = MultiHopSuite(hops=3)
    task = suite.tasks(n=1, seed=4)[0]
    a1, a2 = task.gold["intermediate"]
    final = task.gold["final"]
    response = (
        f"<think>First hop.</think><answer>{a1}</answer>"
        f"<think>Second hop.</think><answer>{a2}</answer>"
        f"<think>Last hop.</think><answer>{final}</answer>"
    )
    model = ScriptedModel([response], chunk_size=5)
    store = await open_store("memory://")
    try:
        async with tether.Agent(suite=suite, model=model, store=store, reasoning="interleaved") as agent:
            events = [e async for e in agent.stream(task)]
    finally:
        await store.close()
    answers = [e for e in events if isinstance(e, IntermediateAnswer)]
    assert [a.text for a in answers] == [a1, a2, final]
    assert [a.index for a in answers] == [0, 1, 2]
    episode = events[-1].episode  # type: ignore[union-attr]
    assert episode.final_answer == final
    assert episode.metrics["ttfa_fraction"] == pytest.approx(response.index(a1) / len(response))
    assert episode.metrics["n_intermediate"] == 2.0 and episode.metrics["format_error"] == 0.0
    assert "ttfa_ms" in episode.metrics
    values, errors = suite.score(task, episode)
    assert errors == {} and values["total"] == 3.5 and values["correct"] == 1.0
    # the system prompt carried the paper's instruction
    assert INTERLEAVED_INSTRUCTION in model.calls[0][0].content


async def test_think_answer_baseline_answers_late() -> None:
    suite = MultiHopSuite(hops=3)
    task = suite.tasks(n=1, seed=4)[0]
    final = task.gold["final"]
    response = f"<think>First hop, second hop, last hop: all done here.</think><answer>{final}</answer>"
    store = await open_store("memory://")
    try:
        async with tether.Agent(
            suite=suite, model=ScriptedModel([response]), store=store, reasoning="think-answer"
        ) as agent:
            episode = await agent.run(task)
    finally:
        await store.close()
    assert episode.final_answer == final
    assert episode.metrics["ttfa_fraction"] > 0.8
    values, _ = suite.score(task, episode)
    assert values == {"format": 1.0, "final": 2.0, "intermediate": 0.0, "correct": 1.0, "total": 3.0}
