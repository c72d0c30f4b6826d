"""`tether sandbox` commands (the typer app the main CLI mounts)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tether.sandbox.cli import app

runner = CliRunner()


def test_exec_prints_the_result_as_json_and_exits_with_its_code() -> None:
    res = runner.invoke(app, ["exec", "--backend", "dummy", "--json", "--", "sh", "-c", "echo hi; exit 4"])
    assert res.exit_code == 4, res.output
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["stdout"] == "hi\n" and data["exit_code"] == 4 and data["timed_out"] is False


def test_exec_timeout_is_reported() -> None:
    res = runner.invoke(app, ["exec", "-b", "dummy", "--timeout", "0.5", "--json", "--", "sleep", "5"])
    assert json.loads(res.stdout.strip().splitlines()[-1])["timed_out"] is True


@pytest.mark.parametrize(
    "args",
    [["exec", "--backend", "nope", "--", "ls"], ["exec", "--memory", "1", "--", "ls"], ["check", "-b", "nope"]],
)
def test_bad_input_is_one_sentence_and_exit_2(args: list[str]) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and "Traceback" not in res.output


def test_check_runs_the_suites_and_prints_a_table() -> None:
    res = runner.invoke(app, ["check", "--backend", "dummy", "--suite", "all", "--json"])
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    conformance = [r for r in rows if r["suite"] == "conformance"]
    assert conformance and all(r["passed"] for r in conformance), rows
    assert any(r["suite"] == "escape" and r["how"].startswith("skipped") for r in rows)
    assert res.exit_code == 0
