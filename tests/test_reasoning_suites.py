"""The reasoning suites: verified gold answers, mode-aware scoring, and the eval summary."""

from __future__ import annotations

import re

import pytest
import reasoning_gym

from tether.errors import UserError
from tether.suites import get_suite
from tether.suites.reasoning import BACKTRACKING_TASKS, KnightsKnavesSuite, MultiHopSuite, kk_judge
from tether.types import Episode, Step, Task


def episode_for(task: Task, text: str, *, tagged: bool, final: str | None = None, **metrics: float) -> Episode:
    """An episode whose single model turn wrote ``text`` (as the agent would store it)."""
    if tagged:
        metrics.setdefault("format_error", 0.0)
    return Episode(
        suite=task.suite,
        task_id=task.id,
        task=task,
        status="done",
        final_answer=final,
        metrics=metrics,
        steps=[Step(index=0, role="prompt", text=task.prompt), Step(index=1, role="assistant", text=text)],
    )


def tagged(*answers: str) -> str:
    return "".join(f"<think>hmm</think><answer>{a}</answer>" for a in answers)


# ----- kk -----


def test_kk_gold_is_verified_by_reasoning_gym_and_covers_3_to_8_people() -> None:
    suite = KnightsKnavesSuite()
    tasks = suite.tasks(n=12, seed=1)
    assert [t.metadata["n_people"] for t in tasks] == [3, 4, 5, 6, 7, 8] * 2
    rg = reasoning_gym.create_dataset("knights_knaves", size=1, seed=0)  # any instance: the verifier is stateless
    for t in tasks:
        gold = t.gold
        assert len(gold["intermediate"]) == t.metadata["n_people"] == len(gold["names"])
        assert rg.score_answer(gold["final"], {"answer": gold["final"]}) == 1.0
        # each intermediate status agrees with the final answer, person by person
        for status in gold["intermediate"]:
            assert status in gold["final"]
        judge = suite.judge(t)
        assert judge(gold["final"], gold["final"]) is True
        assert judge(", ".join(reversed(gold["intermediate"])), gold["final"]) is True  # order-free
    assert suite.task(tasks[7].id) == tasks[7]
    assert KnightsKnavesSuite().tasks(n=3, seed=1) == tasks[:3]  # deterministic
    assert KnightsKnavesSuite().tasks(n=3, seed=2) != tasks[:3]
    assert KnightsKnavesSuite().tasks(n=3, seed=1, split="train") != tasks[:3]


def test_kk_judge_wrong_and_unparseable() -> None:
    judge = kk_judge(["Ann", "Bo"], "knight", "knave", [True, False])
    assert judge("Ann is a knight, and Bo is a knave.", "") is True
    assert judge("Ann is a knight. Bo is a knight.", "") is False
    assert judge("Ann is a knight.", "") is None  # Bo missing
    assert judge("Ann is a hero, Bo is a knave.", "") is None  # not one of the two roles
    # the last statement about a person wins (reasoning first, conclusion last)
    assert judge("If Ann is a knave then ... so Ann is a knight and Bo is a knave.", "") is True


def test_kk_people_option() -> None:
    assert {t.metadata["n_people"] for t in get_suite("kk", people=5).tasks(n=3)} == {5}
    with pytest.raises(UserError):
        get_suite("kk", people=[1])


# ----- multihop -----

FACT_PATTERNS = {
    "mentor": r"(\w+)'s mentor is (\w+)\.",
    "best friend": r"(\w+)'s best friend is (\w+)\.",
    "birthplace": r"(\w+) was born in (\w+)\.",
    "country": r"(\w+) is a city in (\w+)\.",
    "mayor": r"The mayor of (\w+) is (\w+)\.",
    "capital": r"The capital of (\w+) is (\w+)\.",
    "currency": r"The currency of (\w+) is the (\w+)\.",
}


def solve_multihop(prompt: str) -> list[str]:
    """An independent solver: read the facts, unfold the question, follow the chain."""
    facts: dict[tuple[str, str], str] = {}
    for relation, pattern in FACT_PATTERNS.items():
        for a, b in re.findall(pattern, prompt):
            assert facts.setdefault((relation, a), b) == b, "contradicting facts"
    question = re.search(r"Question: (?:Who|What) is (.*)\?", prompt)
    assert question is not None
    phrase = question.group(1)
    relations: list[str] = []
    while m := re.match(r"the (mentor|best friend|birthplace|country|mayor|capital|currency) of (.*)", phrase):
        relations.append(m.group(1))
        phrase = m.group(2)
    answers, current = [], phrase
    for relation in reversed(relations):
        current = facts[(relation, current)]
        answers.append(current)
    return answers


def test_multihop_gold_answers_follow_from_the_context() -> None:
    suite = MultiHopSuite()
    tasks = suite.tasks(n=30, seed=3)
    assert [t.metadata["hops"] for t in tasks[:4]] == [3, 4, 3, 4]
    for t in tasks:
        chain = solve_multihop(t.prompt)
        assert len(chain) == t.metadata["hops"]
        assert chain[:-1] == t.gold["intermediate"] and chain[-1] == t.gold["final"]
        assert len(set(chain)) == len(chain)  # every hop moves to a new entity
    assert suite.task(tasks[5].id) == tasks[5]
    assert len({t.prompt for t in tasks}) == len(tasks)


# ----- rg:TASK -----


@pytest.mark.parametrize("name", BACKTRACKING_TASKS)
def test_rg_tasks_are_scored_by_their_own_verifier(name: str) -> None:
    suite = get_suite(f"rg:{name}")
    assert suite.name == f"rg:{name}"
    (task,) = suite.tasks(n=1, seed=0)
    assert task.suite == f"rg:{name}" and task.gold["intermediate"] == []
    judge = suite.judge(task)
    assert judge(task.gold["final"], task.gold["final"]) is True
    assert judge("certainly not the answer", task.gold["final"]) is False
    assert judge("  ", task.gold["final"]) is None
    assert suite.task(task.id) == task
    values, errors = suite.score(task, episode_for(task, tagged(task.gold["final"]), tagged=True))
    assert errors == {} and values["correct"] == 1.0 and values["final"] == 2.0


def test_rg_needs_a_known_task() -> None:
    with pytest.raises(UserError, match="rg:TASK"):
        get_suite("rg")
    with pytest.raises(UserError, match="Unknown reasoning-gym task"):
        get_suite("rg:no_such_task")


# ----- scoring -----


def test_tagged_scoring_uses_interleaved_reward() -> None:
    suite = MultiHopSuite(hops=3)
    task = suite.tasks(n=1)[0]
    inter, final = task.gold["intermediate"], task.gold["final"]
    good = episode_for(task, tagged(*inter, final), tagged=True)
    values, errors = suite.score(task, good)
    assert errors == {}
    assert values == {"format": 1.0, "final": 2.0, "intermediate": 0.5, "correct": 1.0, "total": 3.5}
    late = episode_for(task, tagged("?", inter[1], final), tagged=True)  # only hop 2, at k=2
    values, _ = suite.score(task, late)
    assert values["intermediate"] == pytest.approx(0.5 / 2 * (1 / 2))
    broken = episode_for(task, f"{final}", tagged=True)
    values, _ = suite.score(task, broken)
    assert values == {"format": -1.0, "final": 0.0, "intermediate": 0.0, "correct": 0.0, "total": -1.0}
    partial = MultiHopSuite(hops=3, variant="partial")
    assert partial.score(task, late)[0]["intermediate"] == pytest.approx(0.25)


def test_plain_scoring_judges_the_final_answer_only() -> None:
    suite = MultiHopSuite(hops=3)
    task = suite.tasks(n=1)[0]
    final = task.gold["final"]
    assert suite.score(task, episode_for(task, final, tagged=False, final=final + "."))[0] == {
        "correct": 1.0,
        "total": 1.0,
    }
    assert suite.score(task, episode_for(task, "x", tagged=False, final="x"))[0] == {"correct": 0.0, "total": 0.0}
    # the reasoning option wins over what the episode looks like
    forced = MultiHopSuite(hops=3, reasoning="interleaved")
    assert "format" in forced.score(task, episode_for(task, final, tagged=False, final=final))[0]
    assert set(forced.rewards()) == {"format", "final", "intermediate", "correct"}
    assert set(suite.rewards()) == {"correct"}


def test_a_failing_reward_is_an_error_not_zero() -> None:
    suite = MultiHopSuite()
    task = Task(id="x", suite="multihop", prompt="?", gold=None)
    values, errors = suite.score(task, episode_for(task, tagged("a"), tagged=True))
    assert values["total"] is None and set(errors) == {"format", "final", "intermediate", "correct"}
    assert "no gold answer" in errors["final"]


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(UserError):
        get_suite("multihop", reasoning="sideways")
    with pytest.raises(UserError):
        get_suite("multihop", variant="bogus")


def test_summarize_reports_pass_at_1_ttfa_rewards_and_format_errors() -> None:
    suite = MultiHopSuite(hops=3)
    t1, t2 = suite.tasks(n=2)
    e1 = episode_for(t1, tagged(*t1.gold["intermediate"], t1.gold["final"]), tagged=True,
                     ttfa_fraction=0.2, ttfa_ms=100.0, n_intermediate=2.0)  # fmt: skip
    e2 = episode_for(t2, "no tags", tagged=True, ttfa_fraction=1.0, n_intermediate=0.0)
    e2.metrics["format_error"] = 1.0
    for e in (e1, e2):
        e.rewards, _ = suite.score(e.task, e)  # type: ignore[arg-type]
    s = suite.summarize([e1, e2])
    assert s["pass@1"] == 0.5
    assert s["ttfa_fraction_mean"] == pytest.approx(0.6)
    assert s["ttfa_ms_mean"] == 100.0 and s["ttfa_token_fraction_mean"] is None
    assert s["format_error_rate"] == 0.5
    assert s["n_intermediate_mean"] == 1.0
    assert s["reward_format_mean"] == 0.0 and s["reward_final_mean"] == 1.0
    assert s["reward_intermediate_mean"] == 0.25 and s["reward_total_mean"] == pytest.approx((3.5 - 1.0) / 2)
    assert s["pass@1_by_level"] == {"3": 0.5}
