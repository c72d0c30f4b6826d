"""The ``tether`` command: runs, JSON output, clear errors, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tether.tools.calls import format_tool_call

TETHER = [sys.executable, "-m", "tether.cli"]


def tether(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TETHER, *args], capture_output=True, text=True, timeout=timeout)


def write_script(path: Path, delay: float = 0.0) -> Path:
    lines = [
        {"turn": 0, "text": format_tool_call("mul", {"a": 12, "b": 7}), "delay_s": delay},
        {"turn": 1, "text": format_tool_call("sub", {"a": 84, "b": 5}), "delay_s": delay},
        {"turn": 2, "text": format_tool_call("finish", {"answer": 79}), "delay_s": delay},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_run_json_stores_episode_with_tokens(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 't.db'}"
    script = write_script(tmp_path / "s.jsonl")
    res = tether("run", "--suite", "calc", "--prompt", "What is 12*7-5?", "--model", f"scripted:{script}",
                 "--db", db, "--json")
    assert res.returncode == 0, res.stderr
    episode = json.loads(res.stdout)
    assert episode["status"] == "done" and episode["final_answer"] == "79"
    assert episode["rewards"]["correct"] == 1.0
    shown = tether("episodes", "show", episode["id"], "--db", db, "--json")
    assert shown.returncode == 0, shown.stderr
    steps = json.loads(shown.stdout)["steps"]
    model_steps = [s for s in steps if s["role"] == "assistant"]
    assert len(model_steps) == 3
    for s in model_steps:
        assert s["token_ids"] and len(s["logprobs"]) == len(s["token_ids"]) == len(s["loss_mask"])
    listed = json.loads(tether("episodes", "list", "--db", db, "--json").stdout)
    assert [e["id"] for e in listed] == [episode["id"]]


def test_run_streams_readably(tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.jsonl")
    res = tether("run", "--prompt", "What is 12*7-5?", "--model", f"scripted:{script}",
                 "--db", f"sqlite:///{tmp_path / 't.db'}")
    assert res.returncode == 0, res.stderr
    assert "tool mul 84" in res.stdout and "done" in res.stdout and "'79'" in res.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--prompt", "hi", "--model", "nonsense:x"], "Unknown model spec"),
        (["run", "--prompt", "hi", "--model", "scripted:/does/not/exist.jsonl"], "does not exist"),
        (["run", "--prompt", "hi", "--model", "scripted:SCRIPT", "--db", "mysql://x"], "database"),
        (["run", "--prompt", "hi", "--suite", "nope", "--model", "scripted:SCRIPT"], "Unknown suite"),
        (["run", "--model", "scripted:SCRIPT"], "exactly one of"),
        (["episodes", "show", "nope", "--db", "memory://"], "No episode"),
        (["tools", "call", "calc", "add", "--args", "{bad"], "not valid JSON"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.jsonl")
    res = tether(*(a.replace("SCRIPT", str(script)) for a in args))
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert needle in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_unreachable_server_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    res = tether("run", "--prompt", "What is 1+1?", "--model", "openai:http://127.0.0.1:9/v1#m",
                 "--db", f"sqlite:///{tmp_path / 't.db'}")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "127.0.0.1:9" in res.stderr


def test_tools_call_and_list() -> None:
    res = tether("tools", "call", "calc", "mul", "--args", '{"a": 6, "b": 7}', "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["content"] == "42"
    bad = tether("tools", "call", "calc", "mul", "--args", '{"a": 6}', "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["is_error"]
    listed = json.loads(tether("tools", "list", "--json").stdout)
    assert {t["name"] for t in listed["calc"]["tools"]} == {"add", "sub", "mul", "div", "finish"}


def test_export_jsonl_and_parquet(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 't.db'}"
    script = write_script(tmp_path / "s.jsonl")
    episode = json.loads(tether("run", "--prompt", "What is 12*7-5?", "--model", f"scripted:{script}",
                                "--db", db, "--json").stdout)
    out = tmp_path / "run.jsonl"
    res = tether("export", episode["run_id"], "--format", "jsonl", "--out", str(out), "--db", db, "--json")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["id"] == episode["id"] and len(rows[0]["steps"]) == 7
    pq = tmp_path / "run.parquet"
    assert tether("export", episode["run_id"], "--format", "parquet", "--out", str(pq), "--db", db).returncode == 0
    assert pq.exists() and pq.stat().st_size > 0
    missing = tether("export", "nope", "--format", "jsonl", "--out", str(tmp_path / "x.jsonl"), "--db", db)
    assert missing.returncode == 2 and not (tmp_path / "x.jsonl").exists()


def _steps(db: Path) -> dict[str, list[tuple[int, str, str]]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute('SELECT episode_id, "index", role, text FROM steps ORDER BY episode_id, "index"').fetchall()
    finally:
        con.close()
    out: dict[str, list[tuple[int, str, str]]] = {}
    for episode_id, idx, role, text in rows:
        out.setdefault(episode_id, []).append((idx, role, text))
    return out


def test_kill_9_mid_batch_then_resume(tmp_path: Path) -> None:
    db_path = tmp_path / "k.db"
    db = f"sqlite:///{db_path}"
    script = write_script(tmp_path / "slow.jsonl", delay=0.25)
    proc = subprocess.Popen(
        [*TETHER, "eval", "calc", "--n", "20", "--concurrency", "4", "--model", f"scripted:{script}", "--db", db,
         "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # kill once some episodes are done and one is mid-way
        time.sleep(0.05)
        if db_path.exists():
            try:
                counts = [len(v) for v in _steps(db_path).values()]
            except sqlite3.Error:
                continue
            if any(c == 7 for c in counts) and any(3 <= c < 7 for c in counts):
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _steps(db_path)
    listed = json.loads(tether("episodes", "list", "--db", db, "--json", "--limit", "100").stdout)
    running = [e for e in listed if e["status"] == "running"]
    assert running, "the batch should have been interrupted mid-way"
    assert any(len(v) == 7 for v in before.values())  # some episodes were complete
    for steps in before.values():  # every stored step is whole and in order
        assert [s[0] for s in steps] == list(range(len(steps)))
    target = max(running, key=lambda e: len(before.get(e["id"], [])))
    assert len(before[target["id"]]) >= 3
    res = tether("run", "--resume", target["id"], "--db", db, "--json")
    assert res.returncode == 0, res.stderr
    resumed = json.loads(res.stdout)
    assert resumed["status"] == "done" and resumed["final_answer"] == "79"
    after = _steps(db_path)[target["id"]]
    assert [s[0] for s in after] == list(range(7))
    assert [s[1] for s in after].count("assistant") == 3  # no model step repeated
    kept = before[target["id"]]
    # the steps stored before the kill are kept as they were (the one in flight may be redone)
    assert after[: len(kept) - 1] == kept[: len(kept) - 1]
    again = tether("run", "--resume", target["id"], "--db", db)
    assert again.returncode == 2 and "already ended" in again.stderr
