#!/usr/bin/env bash
# Build the docker sandbox image offline (debootstrap rootfs -> docker import -> docker build).
# Idempotent: does nothing when the tag exists; the rootfs tarball is cached in tether's cache dir.
# Usage: scripts/build-sandbox-image.sh [extra `tether sandbox build-image` options]
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
exec "$PY" -m tether.sandbox.cli build-image "$@"
