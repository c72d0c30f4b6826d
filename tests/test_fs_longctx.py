"""The longctx suite: seeded generator, planted facts, scoring, baselines and the scripted expert."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import tether
from tether.errors import UserError
from tether.sandbox.bwrap import bwrap_available
from tether.suites import get_suite
from tether.tools.fs.expert import ExpertModel
from tether.tools.fs.generator import QTYPES, build_world, iter_documents, questions
from tether.tools.fs.scoring import extract_answer, normalize, score_answer
from tether.tools.fs.suite import LongCtxSuite, parse_size, summary_table
from tether.types import Episode, Task

SIZE = 200


@pytest.fixture(scope="module")
def corpora() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tether-longctx-test-"))
    path.chmod(0o755)  # the sandbox reads the corpus as its own user
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _docs(size: int, seed: int) -> list[tuple[str, str]]:
    return [(d.id, d.text) for d in iter_documents(build_world(size, seed, doc_tokens=100))]


def test_generator_is_deterministic_per_seed() -> None:
    assert _docs(60, 1) == _docs(60, 1)
    assert _docs(60, 1) != _docs(60, 2)
    q1 = [(q.question, q.gold) for q in questions(build_world(60, 1, 100), 5)]
    assert q1 == [(q.question, q.gold) for q in questions(build_world(60, 1, 100), 5)]
    assert [q.qtype for q in questions(build_world(60, 1, 100), 5)[:8]] == [*QTYPES, *QTYPES]


def test_planted_facts_match_gold_answers() -> None:
    """Gold comes from the world; check it against the text with independent regexes."""
    world = build_world(400, 3, doc_tokens=60)
    text = "\n".join(d.text for d in iter_documents(world))
    for q in questions(world, 6):
        if q.qtype == "needle":
            project = re.search(r"Project (.+)\?", q.question).group(1)  # type: ignore[union-attr]
            found = re.findall(rf"^The access code for Project {re.escape(project)} is (\S+)\.$", text, re.M)
            assert found == [q.gold]
            assert re.search(rf"archive code for Project {re.escape(project)} was", text)  # a distractor exists
        elif q.qtype == "multihop":
            person = re.search(r"office of (.+)'s manager", q.question).group(1)  # type: ignore[union-attr]
            (boss,) = re.findall(rf"^{re.escape(person)}'s manager is (.+)\.$", text, re.M)
            assert re.findall(rf"^{re.escape(boss)}'s office is in (\w+)\.$", text, re.M) == [q.gold]
            (former,) = re.findall(rf"^{re.escape(person)}'s former manager was (.+)\.$", text, re.M)
            assert re.findall(rf"^{re.escape(former)}'s office is in (\w+)\.$", text, re.M) != [q.gold]
        elif q.qtype == "count":
            team, year = re.search(r"the (\w+) team file in (\d+)", q.question).groups()  # type: ignore[union-attr]
            assert len(re.findall(rf"^Incident report filed by the {team} team on {year}-", text, re.M)) == q.gold
        else:
            team, year = re.search(r"the (\w+) team ship in total in (\d+)", q.question).groups()  # type: ignore[union-attr]
            units = re.findall(rf"^Shipment log: the {team} team shipped (\d+) units on {year}-", text, re.M)
            assert sum(map(int, units)) == q.gold


def test_documents_reach_the_token_scale() -> None:
    docs = list(iter_documents(build_world(100, 0, doc_tokens=1000)))
    avg_tokens = sum(len(d.text) for d in docs) / len(docs) / 4
    assert 700 < avg_tokens < 1400


def test_scoring_exact_match_and_oolong_numbers() -> None:
    assert score_answer("Lisbon", "lisbon.") == 1.0
    assert score_answer("Lisbon", "The answer: Lisbon") == 1.0
    assert score_answer("Lisbon", "It is in Lisbon") == 0.0
    assert score_answer("QX-4821", "<answer>qx-4821</answer>") == 1.0
    assert score_answer("QX-4821", "QX-4822") == 0.0
    assert score_answer(12, "12") == 1.0
    assert score_answer(12, "14") == pytest.approx(0.75**2)
    assert score_answer(12, "Answer: 1,009") == pytest.approx(0.75**997)
    assert score_answer(12, "eleven") == 0.0
    question = "How many incident reports did the Harbor team file in 2023?"
    assert score_answer(4, "The Harbor team filed 5 incident reports in 2023.", question) == 0.75
    assert score_answer(2023, "2023", question) == 1.0  # the only number is kept
    assert score_answer("x", None) == 0.0
    assert extract_answer("think...\nFinal answer: 7") == "7"
    assert normalize("  The  Oslo! ") == "oslo"


def test_options_are_validated() -> None:
    assert parse_size("small") == 1000 and parse_size("2e3") == 2000
    with pytest.raises(UserError):
        parse_size("huge")
    with pytest.raises(UserError):
        LongCtxSuite(mode="grep")
    assert isinstance(get_suite("longctx", size="100", mode="rag"), LongCtxSuite)


def test_baseline_prompts_fit_the_budget(corpora: Path) -> None:
    full = LongCtxSuite(size=SIZE, mode="full", corpus_root=corpora, context_tokens=3000, per_type=2)
    tasks = full.tasks(n=8)
    assert len(tasks) == 8 and len({t.prompt.split("Question:")[0] for t in tasks}) == 1
    assert all(1500 < t.metadata["prompt_tokens"] <= 3100 for t in tasks)  # whole documents up to the budget
    assert full.toolset(tasks[0]).tools() == []
    rag = LongCtxSuite(size=SIZE, mode="rag", corpus_root=corpora, context_tokens=3000, top_k=5, per_type=2)
    rtasks = rag.tasks(n=8)
    assert all(t.metadata["prompt_tokens"] <= 3100 and 1 <= t.metadata["chunks"] <= 5 for t in rtasks)
    # the retrieved chunks differ per question
    assert len({t.prompt.split("Question:")[0] for t in rtasks}) == 8


def test_summary_reports_per_type_accuracy() -> None:
    suite = LongCtxSuite(size=SIZE, mode="fs")
    eps = []
    for qtype, correct in [("needle", 1.0), ("needle", 0.0), ("count", 0.5625)]:
        task = Task(id=qtype, suite="longctx", prompt="q" * 40, metadata={"qtype": qtype})
        eps.append(Episode(task=task, rewards={"correct": correct}, metrics={"tool_calls": 2.0}, duration_ms=500))
    summary = suite.summarize(eps)
    assert summary["by_type"]["needle"]["accuracy"] == 0.5 and summary["by_type"]["count"]["accuracy"] == 0.5625
    assert summary["overall"]["n"] == 3 and summary["overall"]["tool_calls"] == 2.0
    assert summary["overall"]["tokens_read"] == 10
    assert "needle" in summary_table(summary)


@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot run here")
async def test_expert_solves_every_type_through_the_agent(corpora: Path) -> None:
    suite = LongCtxSuite(size=SIZE, mode="fs", corpus_root=corpora, per_type=3)
    tasks = suite.tasks(n=12)
    episodes = await tether.rollout(
        tasks, suite=suite, model=ExpertModel(), store="memory://", concurrency=2, max_turns=6
    )
    summary = suite.summarize(episodes)
    for qtype in QTYPES:
        assert summary["by_type"][qtype]["accuracy"] >= 0.95, summary
    multihop = next(e for e in episodes if e.task and e.task.metadata["qtype"] == "multihop")
    calls = [c.name for s in multihop.steps for c in s.tool_calls]
    assert calls == ["grep", "grep"]  # it followed the chain through the real tools
    assert summary["overall"]["tool_calls"] >= 1


async def test_full_context_misses_what_does_not_fit(corpora: Path) -> None:
    """The expert reading the full-context prompt is an upper bound for that baseline: it is far from perfect."""
    suite = LongCtxSuite(size=SIZE, mode="full", corpus_root=corpora, context_tokens=2000, per_type=3)
    episodes = await tether.rollout(suite.tasks(n=12), suite=suite, model=ExpertModel(), store="memory://")
    assert suite.summarize(episodes)["overall"]["accuracy"] < 0.6
