"""The shipped escape and abuse suite, run against the real backends.

The dummy isolates nothing (see ``tether.sandbox.dummy``), so it only appears in
``test_escape_suite_catches_a_leaky_backend``, with the read-only attacks, to show the
checks do fail when a backend leaks; the suite refuses to run the others against it.
"""

from __future__ import annotations

import functools

import pytest

from tether.sandbox.base import SandboxLimits
from tether.sandbox.escape import ESCAPE, HOST_SAFE
from tether.sandbox.registry import BackendFactory, backend_unavailable, sandbox_factory


@functools.cache
def unavailable(backend: str) -> str | None:
    return backend_unavailable(backend)


def factory_for(backend: str) -> BackendFactory:
    why = unavailable(backend)
    if why:
        pytest.skip(f"{backend} backend unavailable: {why}")
    return sandbox_factory(backend, SandboxLimits(timeout_s=30, memory_mb=512))


BACKENDS = ["bwrap", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("attack", ESCAPE.names())
async def test_attack_contained(backend: str, attack: str) -> None:
    result = await ESCAPE.run_one(attack, factory_for(backend))
    assert result.passed, f"{backend}/{attack} NOT contained: {result.how}"


@pytest.mark.parametrize("attack", ["host_secret_files", "host_environment"])
async def test_escape_suite_catches_a_leaky_backend(attack: str) -> None:
    assert attack in HOST_SAFE
    result = await ESCAPE.run_one(attack, sandbox_factory("dummy"))
    assert not result.passed, f"the dummy (no isolation) passed {attack}: {result.how}"


async def test_escape_suite_refuses_damaging_attacks_on_the_dummy() -> None:
    result = await ESCAPE.run_one("signal_host_processes", sandbox_factory("dummy"))
    assert not result.passed and result.how.startswith("refused")
