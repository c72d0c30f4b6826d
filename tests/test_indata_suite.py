"""The InData benchmark: generated questions, the scripted oracle (must score 100%), scoring, summaries."""

from __future__ import annotations

import collections
import json

import duckdb
import pytest

import tether
from tether.errors import ModelError, UserError
from tether.store.memory import InMemoryStore
from tether.suites import get_suite
from tether.tools.indata.datasets import generate, resolve
from tether.tools.indata.oracle import OracleModel, run_plan
from tether.tools.indata.questions import LEVEL_CALLS, generate_questions
from tether.tools.indata.scoring import score_answer
from tether.tools.indata.suite import InDataSuite
from tether.types import Episode, Step, ToolResult


@pytest.fixture(scope="module")
def suite() -> InDataSuite:
    return InDataSuite(per_template=4)


def test_tasks_cover_levels_domains_and_are_deterministic(suite: InDataSuite) -> None:
    tasks = suite.tasks()
    assert len(tasks) > 150
    levels = collections.Counter(t.metadata["level"] for t in tasks)
    assert set(levels) == {"easy", "medium", "hard"} and min(levels.values()) > 30
    assert {t.metadata["domain"] for t in tasks} == {"retail", "hospital", "hr"}
    assert len({t.id for t in tasks}) == len(tasks) and len({t.prompt for t in tasks}) == len(tasks)
    one = generate_questions(generate("hr", 0), "hr", per_template=2, seed=0)
    two = generate_questions(generate("hr", 0), "hr", per_template=2, seed=0)
    assert [(q.prompt, q.gold, q.plan) for q in one] == [(q.prompt, q.gold, q.plan) for q in two]
    assert [t.id for t in suite.tasks(n=5, seed=1)] != [t.id for t in tasks[:5]]
    for t in tasks:
        lo, hi = LEVEL_CALLS[t.metadata["level"]]
        assert lo <= len(t.metadata["oracle_plan"]) <= hi, t.id
        assert t.gold["type"] in ("number", "string", "list", "set")
    hard = InDataSuite(level="hard", per_template=2).tasks()
    assert hard and all(t.metadata["level"] == "hard" for t in hard)


def test_datasets_are_seeded_and_realistic() -> None:
    a, b, c = generate("retail", 0), generate("retail", 0), generate("retail", 1)
    assert all(a.tables[n].equals(b.tables[n]) for n in a.tables)
    assert not a.tables["orders"].equals(c.tables["orders"])
    for domain in ("retail", "hospital", "hr"):
        ds = resolve(f"{domain}:0")
        assert any(ds.sensitive.values())
        assert any(df.isna().any().any() for df in ds.tables.values())  # real data has gaps


async def test_oracle_scores_100_percent_on_every_level(suite: InDataSuite) -> None:
    scores: dict[str, list[float]] = collections.defaultdict(list)
    for task in suite.tasks():
        async with suite.toolset(task) as tools:
            answer, _ = await run_plan(tools, task.metadata["oracle_plan"])
        scores[task.metadata["level"]].append(score_answer(answer, task.gold))
    assert {lv: sum(v) / len(v) for lv, v in scores.items()} == {"easy": 1.0, "medium": 1.0, "hard": 1.0}
    assert sum(len(v) for v in scores.values()) >= 150


async def test_gold_answers_agree_with_plain_sql() -> None:
    """A third implementation: simple questions re-answered with hand-written SQL on the raw data."""
    suite = InDataSuite(level="easy", per_template=4, dataset="retail")
    ds = resolve("retail:0")
    con = duckdb.connect()
    con.register("orders", ds.tables["orders"])
    checked = 0
    for t in suite.tasks():
        step = t.metadata["oracle_plan"][0]
        if t.metadata["template"] == "count_eq":
            cond = step["args"]["where"][0]
            got = con.execute(f'SELECT count(*) FROM orders WHERE "{cond["column"]}" = ?', [cond["value"]]).fetchone()
        elif t.metadata["template"] == "count_gt":
            cond = step["args"]["where"][0]
            got = con.execute(f'SELECT count(*) FROM orders WHERE "{cond["column"]}" > ?', [cond["value"]]).fetchone()
        else:
            continue
        assert got is not None and got[0] == t.gold["value"]
        checked += 1
    assert checked >= 4


async def test_oracle_through_the_real_agent_and_summary() -> None:
    suite = InDataSuite(per_template=1)
    tasks = suite.tasks()
    picked = [next(t for t in tasks if t.metadata["level"] == lv) for lv in ("easy", "medium", "hard")]
    episodes = await tether.rollout(
        picked,
        suite=suite,
        model=OracleModel(tasks=picked),
        store=InMemoryStore(),
        concurrency=3,
        checkpoint=False,
        max_turns=12,
    )
    for ep, task in zip(episodes, picked, strict=True):
        assert ep.status == "done", ep.error
        assert ep.rewards["correct"] == 1.0
        results = [r for s in ep.steps for r in s.tool_results]
        assert len(results) == len(task.metadata["oracle_plan"])
        assert all("audit" in r.data for r in results)
    summary = suite.summarize(episodes)
    assert summary["all"]["accuracy"] == 1.0 and summary["all"]["invalid_call_rate"] == 0.0
    assert set(summary["levels"]) == {"easy", "medium", "hard"}
    assert summary["levels"]["hard"]["mean_tool_calls"] >= 6


async def test_oracle_without_a_plan_is_a_model_error() -> None:
    from tether.types import Message, SamplingParams

    with pytest.raises(ModelError):
        await OracleModel().generate([Message(role="user", content="no such question")], SamplingParams())


def test_summary_counts_invalid_calls(suite: InDataSuite) -> None:
    task = suite.tasks()[0]
    steps = [
        Step(
            index=1,
            role="tool",
            tool_results=[
                ToolResult(call_id="a", name="describe", content="{}"),
                ToolResult(call_id="b", name="head", content="ToolError: x", is_error=True),
            ],
        )
    ]
    eps = [Episode(task=task, steps=steps, rewards={"correct": 0.0}, duration_ms=2000.0)]
    fig = suite.summarize(eps)["all"]
    assert fig == {"n": 1, "accuracy": 0.0, "mean_tool_calls": 2.0, "invalid_call_rate": 0.5, "mean_time_s": 2.0}


@pytest.mark.parametrize(
    ("answer", "gold", "want"),
    [
        ("42", {"value": 42, "type": "number"}, 1.0),
        ("42.0000001", {"value": 42, "type": "number", "tol": 1e-6}, 1.0),
        ("41", {"value": 42, "type": "number"}, 0.0),
        ("The answer is 1,234.5.", {"value": 1234.5, "type": "number"}, 1.0),
        ("between 3 and 4", {"value": 3, "type": "number"}, 0.0),
        ("  Electronics. ", {"value": "electronics", "type": "string"}, 1.0),
        ('"hr"', {"value": "HR", "type": "string"}, 1.0),
        ("books", {"value": "electronics", "type": "string"}, 0.0),
        ('["a", "b", "c"]', {"value": ["a", "b", "c"], "type": "list"}, 1.0),
        ('["b", "a", "c"]', {"value": ["a", "b", "c"], "type": "list"}, 0.0),
        ("a, b, c", {"value": ["a", "b", "c"], "type": "list"}, 1.0),
        ('["c", "a", "b"]', {"value": ["a", "b", "c"], "type": "set"}, 1.0),
        ('["c", "a"]', {"value": ["a", "b", "c"], "type": "set"}, 0.0),
        ("[1, 2]", {"value": [1.0, 2.0], "type": "list"}, 1.0),
        (None, {"value": 1, "type": "number"}, 0.0),
    ],
)
def test_scoring(answer: str | None, gold: dict[str, object], want: float) -> None:
    assert score_answer(answer, gold) == want


def test_reward_is_error_without_gold(suite: InDataSuite) -> None:
    task = suite.tasks()[0].model_copy(update={"gold": None})
    values, errors = suite.score(task, Episode(final_answer="1"))
    assert values["correct"] is None and "correct" in errors


def test_registry_and_bad_options() -> None:
    assert isinstance(get_suite("indata", level="easy"), InDataSuite)
    with pytest.raises(UserError):
        InDataSuite(level="expert")
    with pytest.raises(UserError):
        InDataSuite(dataset="nope")
    assert json.dumps(InDataSuite(per_template=1).tasks(n=1)[0].gold)


async def test_many_concurrent_episodes_share_the_dataset_safely() -> None:
    import asyncio

    suite = InDataSuite(per_template=1)
    tasks = suite.tasks()[:24]

    async def one(task: object) -> float:
        async with suite.toolset(task) as tools:  # type: ignore[arg-type]
            answer, _ = await run_plan(tools, task.metadata["oracle_plan"])  # type: ignore[attr-defined]
        return score_answer(answer, task.gold)  # type: ignore[attr-defined]

    assert await asyncio.gather(*(one(t) for t in tasks)) == [1.0] * len(tasks)
    # every episode's handles were dropped with its schema
    from tether.tools.indata.suite import shared_tables

    for spec in {t.metadata["dataset"] for t in tasks}:
        schemas = (
            shared_tables(spec)
            .conn.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name LIKE 'ep_%'")
            .fetchone()
        )
        assert schemas == (0,)
