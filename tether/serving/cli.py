"""``tether serve-model``: start the vLLM OpenAI server on loopback and keep it up until Ctrl-C.

Mounted by ``tether/cli.py`` as ``app.command("serve-model")(serve_model)``.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import typer

from tether.errors import UserError
from tether.serving.server import VLLMServer


def _say(text: str) -> None:
    typer.echo(text, err=True)


def serve_model(
    model: str = typer.Option("local", "--model", "-m", help="'local' (embedded SmolLM2) or a HF model folder."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port on 127.0.0.1 (default: a free one)."),
    name: str | None = typer.Option(None, "--name", help="Served model name (default: smollm2 for local)."),
    max_model_len: int = typer.Option(2048, "--max-model-len", help="Context length."),
    lora: bool = typer.Option(True, "--lora/--no-lora", help="Allow runtime LoRA adapters (weight publishing)."),
    compile: bool = typer.Option(False, "--compile/--eager", help="CPU only: compile the graph (slow start)."),
    dev_mode: bool = typer.Option(
        False, "--dev-mode", help="Enable vLLM's dev endpoints (in-place full-weight reload); loopback only."
    ),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds to wait for the server to be ready."),
) -> None:
    """Start vLLM's OpenAI-compatible server on 127.0.0.1 and serve until interrupted."""
    if port is not None and not 0 < port < 65536:
        raise UserError(f"--port must be between 1 and 65535, not {port}.")
    server = VLLMServer(
        model,
        port=port,
        served_name=name,
        max_model_len=max_model_len,
        enable_lora=lora,
        compile=compile,
        dev_mode=dev_mode,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt

    # both signals stop the server (also while it starts), even where SIGINT was inherited
    # as ignored (background jobs)
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        _say(f"Starting vLLM ({server.model_dir}) on {server.base_url}; log: {server.log_path}")
        seconds = server.wait_ready(timeout=timeout, progress=_say)
        _say(f"Ready in {seconds:.0f} s. Model spec: {server.spec}")
        typer.echo(server.spec)
        sys.stdout.flush()
        while not stop.is_set() and server.is_running():
            stop.wait(1.0)
        if not server.is_running() and not stop.is_set():
            raise UserError(f"The vLLM server stopped unexpectedly; see {server.log_path}.")
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _say("Stopping the vLLM server...")
        server.stop()
