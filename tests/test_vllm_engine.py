"""The in-process ``vllm:`` backend, run inside the vLLM interpreter (``.venv-vllm``).

vLLM lives in its own environment, so the checks run there as a script
(``tests/vllm_engine_check.py``) and this test asserts on what it observed: the
sampled ids/logprobs, streaming, a constrained tool call, and in-place weight updates.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tether.models.embedded import ensure_embedded_model
from tether.serving.server import ServerError, find_vllm_python, repo_root
from tether.tools.calls import parse_tool_calls

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    try:
        python = find_vllm_python()
    except ServerError as exc:
        pytest.skip(f"vLLM tier skipped: {exc}")
    work = tmp_path_factory.mktemp("vllm-engine")
    env = {**os.environ, "PYTHONPATH": str(repo_root()), "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    script = Path(__file__).with_name("vllm_engine_check.py")
    proc = subprocess.run(
        [str(python), str(script), str(ensure_embedded_model()), str(work)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


def test_completion_carries_sampled_ids_logprobs_and_prompt(observed: dict[str, Any]) -> None:
    base = observed["base"]
    assert base["token_ids"] and len(base["logprobs"]) == len(base["token_ids"])
    assert all(lp <= 0.0 for lp in base["logprobs"])
    assert base["prompt_token_ids"] and base["policy_version"] == 0


def test_stream_matches_generate(observed: dict[str, Any]) -> None:
    assert observed["stream_deltas"] == observed["stream"]["text"] == observed["base"]["text"]
    assert observed["stream"]["token_ids"] == observed["base"]["token_ids"]


def test_required_constraint_gives_a_valid_call(observed: dict[str, Any]) -> None:
    text = observed["required_call"]["text"]
    parsed = parse_tool_calls(text)
    assert parsed.calls and not parsed.errors, text
    assert parsed.calls[0].name == "mul" and set(parsed.calls[0].arguments) == {"a", "b"}


def test_full_weights_reloaded_in_place_change_the_policy(observed: dict[str, Any]) -> None:
    base, full = observed["base"], observed["full"]
    assert observed["published_full"] == 1 and full["policy_version"] == 1
    assert full["prompt_token_ids"] == base["prompt_token_ids"]
    assert full["token_ids"] != base["token_ids"] or full["logprobs"] != pytest.approx(base["logprobs"], abs=1e-4)


def test_lora_published_at_run_time_changes_the_policy(observed: dict[str, Any]) -> None:
    full, lora = observed["full"], observed["lora"]
    assert observed["published_lora"] == 2 and lora["policy_version"] == 2
    assert lora["token_ids"] != full["token_ids"] or lora["logprobs"] != pytest.approx(full["logprobs"], abs=1e-4)
