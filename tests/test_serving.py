"""Serving process management without vLLM: a stand-in interpreter plays the server.

``VLLMServer(python=...)`` runs ``PYTHON -m vllm.entrypoints.openai.api_server ...``; here
PYTHON is a small script that answers ``/health`` and ``/v1/models`` on the given port
(after a delay, or never, or exits at once), so readiness polling, progress messages,
early-exit reporting and process-group shutdown are tested for real.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tether.errors import UserError
from tether.serving.server import HOST, ServerError, VLLMServer, find_vllm_python, resolve_model_dir

FAKE = """#!{python}
import http.server, json, os, subprocess, sys, time
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
mode = os.environ.get("FAKE_MODE", "ok")
print("fake vllm starting", " ".join(args), flush=True)
if mode == "crash":
    print("RuntimeError: no memory for the KV cache", flush=True)
    sys.exit(3)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # like vLLM's engine core
open(os.environ["FAKE_CHILD_FILE"], "w").write(str(child.pid))
time.sleep(float(os.environ.get("FAKE_DELAY", "0")))

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        body = json.dumps({{"data": [{{"id": "m"}}]}}).encode()
        self.send_response(200 if mode == "ok" else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    path = tmp_path / "python"
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "tiny-model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def server_for(
    fake_python: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str
) -> VLLMServer:
    monkeypatch.setenv("FAKE_CHILD_FILE", str(tmp_path / "child.pid"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return VLLMServer(str(model_dir), python=fake_python, log_path=tmp_path / "server.log")


def test_starts_on_loopback_waits_with_progress_and_stops_the_whole_group(
    fake_python: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_for(fake_python, model_dir, tmp_path, monkeypatch, FAKE_DELAY="1.5")
    notes: list[str] = []
    server.start()
    try:
        seconds = server.wait_ready(timeout=60, progress=notes.append, every=0.5)
        assert seconds >= 1.0 and notes and "Waiting for vLLM" in notes[0]
        assert server.base_url == f"http://{HOST}:{server.port}/v1"
        assert server.spec == f"openai:http://127.0.0.1:{server.port}/v1#tiny-model"
        logged = (tmp_path / "server.log").read_text()
        assert "--host 127.0.0.1" in logged and f"--model {model_dir}" in logged and "--enable-lora" in logged
        child = int((tmp_path / "child.pid").read_text())
        assert alive(child)
    finally:
        server.stop(grace=5)
    assert not server.is_running()
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child), "the server's child process outlived stop()"


def test_early_exit_reports_the_log_tail(
    fake_python: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_for(fake_python, model_dir, tmp_path, monkeypatch, FAKE_MODE="crash")
    server.start()
    with pytest.raises(ServerError, match=r"exited with code 3 before it was ready(.|\n)*no memory for the KV cache"):
        server.wait_ready(timeout=60)


def test_not_ready_in_time_is_an_error_and_stops_the_server(
    fake_python: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_for(fake_python, model_dir, tmp_path, monkeypatch, FAKE_MODE="unhealthy")
    server.start()
    with pytest.raises(ServerError, match="was not ready after 2 s"):
        server.wait_ready(timeout=2)
    assert not server.is_running()


def test_cpu_command_line_is_eager_with_a_fixed_kv_cache(model_dir: Path, fake_python: Path) -> None:
    server = VLLMServer(str(model_dir), python=fake_python, port=8123, kv_cache_gib=0.5)
    server.model_dir = model_dir
    cmd = server.command()
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--port") + 1] == "8123" and cmd[cmd.index("--host") + 1] == "127.0.0.1"
    if not Path("/dev/nvidiactl").exists():
        assert "--enforce-eager" in cmd and cmd[cmd.index("--kv-cache-memory-bytes") + 1] == str(2**29)
    env = server.environment()
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True" and env["HF_HUB_OFFLINE"] == "1"


def test_person_errors_are_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="is not a model folder"):
        resolve_model_dir(str(tmp_path / "nope"))
    monkeypatch.setenv("TETHER_VLLM_PYTHON", str(tmp_path / "missing-python"))
    with pytest.raises(UserError, match="is not a Python interpreter"):
        find_vllm_python()


def test_serve_model_command_reports_a_failed_start(
    fake_python: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer
    from typer.testing import CliRunner

    from tether.serving.cli import serve_model

    monkeypatch.setenv("TETHER_VLLM_PYTHON", str(fake_python))
    monkeypatch.setenv("FAKE_MODE", "crash")
    monkeypatch.setenv("FAKE_CHILD_FILE", str(tmp_path / "child.pid"))
    app = typer.Typer()
    app.command()(serve_model)
    result = CliRunner().invoke(app, ["--model", str(model_dir)])
    assert isinstance(result.exception, ServerError) and "exited with code 3" in str(result.exception)
    bad = CliRunner().invoke(app, ["--model", str(model_dir), "--port", "70000"])
    assert isinstance(bad.exception, UserError) and "--port must be between" in str(bad.exception)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_model_stops_the_server_group_on_a_signal(
    signum: int, fake_python: Path, model_dir: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TETHER_VLLM_PYTHON": str(fake_python),
        "FAKE_CHILD_FILE": str(tmp_path / "child.pid"),
        "FAKE_DELAY": "0.5",
    }
    code = "import typer; from tether.serving.cli import serve_model; typer.run(serve_model)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--model", str(model_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        spec = proc.stdout.readline().strip()  # printed once the server is ready
        assert spec.startswith("openai:http://127.0.0.1:") and spec.endswith("#tiny-model")
        child = int((tmp_path / "child.pid").read_text())
        assert alive(child)
        proc.send_signal(signum)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)
    assert proc.stderr is not None and "Stopping the vLLM server" in proc.stderr.read()
