"""The online loop and ``tether train`` end to end on a tiny random model (SQLite store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tether.models.testing import tiny_model_dir
from tether.suites.format import FormatSuite, correct, exact
from tether.training.cli import train
from tether.training.demo import bootstrap_diff
from tether.types import Episode, Task


def _summary(output: str) -> dict:  # type: ignore[type-arg]
    return json.loads(output[output.index('{"run_id"') :].splitlines()[0])


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("train")(train)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer in sub-command mode
        pass

    return app


def test_format_suite_rewards() -> None:
    task = Task(id="t", suite="format", prompt="What is 2 + 3?", gold=5)

    def ep(answer: str) -> Episode:
        return Episode(final_answer=answer)

    assert (correct(task, ep("5")), exact(task, ep("5"))) == (1.0, 1.0)
    assert (correct(task, ep("2 + 3 = 5.")), exact(task, ep("2 + 3 = 5."))) == (1.0, 0.0)
    assert (correct(task, ep("6")), exact(task, ep(" 6 "))) == (0.0, 0.0)
    suite = FormatSuite()
    train_ids = {t.prompt for t in suite.tasks(n=5, split="train")}
    assert suite.tasks(n=5, split="train") == suite.tasks(n=5, split="train")
    assert all(t.gold == eval(t.prompt[8:-1]) for t in suite.tasks(n=20))  # noqa: S307
    assert len(train_ids) >= 1


def test_bootstrap_interval_brackets_the_mean() -> None:
    before = [0.0] * 20
    after = [1.0] * 10 + [0.0] * 10
    d, lo, hi = bootstrap_diff(before, after)
    assert d == 0.5 and 0.2 < lo < 0.5 < hi < 0.8


@pytest.mark.slow
def test_train_resume_and_from_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    model = tiny_model_dir(tmp_path)
    db = f"sqlite:///{tmp_path / 'tether.db'}"
    common = ["--model", f"local:{model}", "--store", db, "--json"]
    args = ["train", "--suite", "calc", "--group", "2", "--batch", "2", "--max-tokens", "4", "--max-turns", "1"]
    runner = CliRunner()
    first = runner.invoke(_app(), [*args, "--steps", "1", *common])
    assert first.exit_code == 0, first.output
    out = _summary(first.output)
    assert out["steps"] == 1 and out["last"]["samples"] == 4.0 and out["last"]["groups"] == 2.0
    run_id = out["run_id"]
    ckpts = list((tmp_path / "data" / "tether" / "checkpoints" / run_id).glob("step-*"))
    assert [p.name for p in ckpts] == ["step-000001"]

    resumed = runner.invoke(_app(), ["train", "--resume", run_id, "--steps", "2", *common])
    assert resumed.exit_code == 0, resumed.output
    out2 = _summary(resumed.output)
    assert out2["run_id"] == run_id and out2["steps"] == 1 and out2["last"]["policy_version"] == 2.0

    offline = runner.invoke(_app(), ["train", "--from-store", run_id, "--steps", "1", "--batch", "2", *common])
    assert offline.exit_code == 0, offline.output
    out3 = _summary(offline.output)
    assert out3["kind"] == "train-offline" and out3["steps"] == 1

    bad = runner.invoke(_app(), ["train", "--resume", "nope", *common])
    assert bad.exit_code == 2 and "No run 'nope'" in bad.output
