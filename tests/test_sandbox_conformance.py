"""The shipped conformance suite, run against every backend (the dummy included)."""

from __future__ import annotations

import functools

import pytest

from tether.sandbox.base import SandboxLimits
from tether.sandbox.conformance import CONFORMANCE
from tether.sandbox.registry import BackendFactory, backend_unavailable, sandbox_factory


@functools.cache
def unavailable(backend: str) -> str | None:
    return backend_unavailable(backend)


def factory_for(backend: str) -> BackendFactory:
    why = unavailable(backend)
    if why:
        pytest.skip(f"{backend} backend unavailable: {why}")
    return sandbox_factory(backend, SandboxLimits(timeout_s=30, memory_mb=512))


BACKENDS = ["dummy", "bwrap", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("check", CONFORMANCE.names())
async def test_conformance(backend: str, check: str) -> None:
    result = await CONFORMANCE.run_one(check, factory_for(backend))
    assert result.passed, f"{backend}/{check}: {result.how}"
