"""Generic evaluation figures and majority vote."""

from __future__ import annotations

from tether.api.eval import evaluate, generic_figures, vote_figures
from tether.models.scripted import ScriptedModel
from tether.tools.calls import format_tool_call
from tether.types import Episode


def _ep(task: str, answer: str, reward: float, **metrics: float) -> Episode:
    return Episode(task_id=task, final_answer=answer, rewards={"total": reward}, status="done", metrics=metrics)


def test_generic_figures() -> None:
    eps = [
        _ep("a", "1", 1.0, turns=2, tool_calls=2, invalid_calls=1, new_tokens=10),
        _ep("b", "2", 0.0, turns=4, tool_calls=2, invalid_calls=0, new_tokens=30),
    ]
    eps.append(Episode(task_id="c", status="error"))
    fig = generic_figures(eps)
    assert fig["episodes"] == 3 and fig["errors"] == 1
    assert fig["reward_mean"] == 0.5
    assert fig["invalid_call_rate"] == 0.25
    assert fig["tokens"] == 40


def test_vote_picks_the_majority_answer() -> None:
    eps = [_ep("a", "7", 1.0), _ep("a", "7.0", 1.0), _ep("a", "8", 0.0), _ep("b", "x", 0.0), _ep("b", "y", 0.0),
           _ep("b", "y.", 0.0), _ep("b", "z", 1.0)]
    fig = vote_figures(eps)
    assert fig == {"tasks": 2, "vote_accuracy": 0.5}


async def test_evaluate_calc_with_a_scripted_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = ScriptedModel([format_tool_call("finish", {"answer": 0})] * 3)
    report = await evaluate("calc", n=3, model=model, store="memory://", progress=False)
    assert report["episodes"] == 3 and report["accuracy"] == 0.0
    assert report["mean_turns"] == 1.0 and report["mean_tool_calls"] == 1.0
