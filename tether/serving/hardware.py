"""What the machine offers vLLM: a GPU, or a CPU and its fastest dtype (no heavy imports)."""

from __future__ import annotations

import shutil
from pathlib import Path


def has_gpu() -> bool:
    """Whether an NVIDIA GPU is visible (then the GPU vLLM build is expected)."""
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


def cpu_dtype() -> str:
    """bfloat16 when the CPU computes it natively (AVX512-BF16 / AMX), else float32 (faster on AVX2)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "bfloat16"
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"
