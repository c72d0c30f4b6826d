"""``tether tools call indata``: one call at a time, handles kept per session across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tether.errors import UserError
from tether.tools.indata import cli
from tether.tools.indata.oracle import resolve
from tether.tools.indata.scoring import score_answer
from tether.tools.indata.suite import InDataSuite


@pytest.fixture(autouse=True)
def sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "sessions"
    monkeypatch.setattr(cli, "sessions_dir", lambda: folder)
    return folder


async def test_handles_persist_within_a_session(sessions: Path) -> None:
    first = await cli.call_tool(
        "filter",
        {"table": "orders", "where": [{"column": "status", "op": "eq", "value": "returned"}]},
        dataset="retail",
        session="s1",
    )
    assert not first["is_error"] and json.loads(first["content"])["handle"] == "t1"
    agg = await cli.call_tool(
        "aggregate", {"table": "t1", "group_by": ["channel"], "metrics": [{"fn": "count"}]}, session="s1"
    )
    assert json.loads(agg["content"])["handle"] == "t2"
    listed = json.loads((await cli.call_tool("list_tables", {}, session="s1"))["content"])
    assert [t["name"] for t in listed["tables"]] == ["customers", "orders", "products", "t1", "t2"]
    # without the session, handles do not exist
    alone = await cli.call_tool("head", {"table": "t1"}, dataset="retail")
    assert alone["is_error"] and "unknown table" in alone["content"]
    audit = [json.loads(line) for line in (sessions / "s1" / "audit.jsonl").read_text().splitlines()]
    assert [a["seq"] for a in audit] == [1, 2, 3] and [a["tool"] for a in audit] == [
        "filter",
        "aggregate",
        "list_tables",
    ]


def test_handles_persist_across_processes(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    code = (
        "import asyncio, json, sys; from tether.tools.indata.cli import call_tool;"
        "r = asyncio.run(call_tool(sys.argv[1], json.loads(sys.argv[2]), dataset='hr:2', session='p'));"
        "print(json.dumps(r))"
    )
    run = lambda tool, args: json.loads(  # noqa: E731
        subprocess.run(
            [sys.executable, "-c", code, tool, json.dumps(args)], env=env, check=True, capture_output=True, text=True
        ).stdout
    )
    made = run("filter", {"table": "employees", "where": [{"column": "remote", "op": "eq", "value": True}]})
    counted = run("count", {"table": json.loads(made["content"])["handle"]})
    assert json.loads(counted["content"])["rows"] == json.loads(made["content"])["rows"] > 0


async def test_person_mistakes_are_user_errors() -> None:
    await cli.call_tool("count", {"table": "orders"}, dataset="retail:0", session="m")
    with pytest.raises(UserError, match="uses dataset"):
        await cli.call_tool("count", {"table": "orders"}, dataset="hr", session="m")
    with pytest.raises(UserError, match="session name"):
        await cli.call_tool("count", {"table": "orders"}, session="../etc")
    with pytest.raises(UserError, match="Unknown InData tool"):
        await cli.call_tool("drop_table", {}, session="m")
    with pytest.raises(UserError, match="Unknown InData dataset"):
        await cli.call_tool("count", {"table": "orders"}, dataset="/no/such/folder")
    assert cli.reset_session("m") and not cli.reset_session("m")


async def test_folder_datasets_with_schema_and_heuristics(tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    (folder / "people.csv").write_text(
        "id,full_name,email,ward,score\n"
        + "".join(f"{i},Name {i},p{i}@x.example,{'AB'[i % 2]},{i * 1.5}\n" for i in range(12)),
        encoding="utf-8",
    )
    described = json.loads((await cli.call_tool("describe", {"table": "people"}, dataset=str(folder)))["content"])
    assert {c["name"] for c in described["columns"] if c["sensitive"]} == {"full_name", "email"}
    (folder / "schema.json").write_text(json.dumps({"tables": {"people": {"sensitive": ["ward"]}}}), encoding="utf-8")
    cli_ds = str(folder)
    from tether.tools.indata import datasets

    datasets._resolve_cached.cache_clear()
    datasets.arrow_tables.cache_clear()
    from tether.tools.indata import suite as suite_mod

    suite_mod._SHARED.pop(str(folder.resolve()), None)
    described = json.loads((await cli.call_tool("describe", {"table": "people"}, dataset=cli_ds))["content"])
    assert {c["name"] for c in described["columns"] if c["sensitive"]} == {"ward"}
    head = json.loads((await cli.call_tool("head", {"table": "people", "n": 3}, dataset=cli_ds))["content"])
    assert "ward" not in head["columns"] and head["rows"][0][1] == "Name 0"


async def test_replaying_a_question_through_the_cli_reproduces_the_gold_answer() -> None:
    tasks = InDataSuite(level="hard", per_template=1, dataset="hospital", seed=3).tasks()
    for task in tasks[:3]:
        session = f"replay-{task.id}"
        results: list[Any] = []
        answer = None
        for step in task.metadata["oracle_plan"]:
            res = await cli.call_tool(
                step["tool"], resolve(step["args"], results), dataset=task.metadata["dataset"], session=session
            )
            assert not res["is_error"], res["content"]
            if step["tool"] == "answer":
                answer = res["content"]
            else:
                results.append(json.loads(res["content"]))
        assert score_answer(answer, task.gold) == 1.0
