"""Sandbox backends by name; each backend's module (and heavy import) loads only when built.

    factory = sandbox_factory("bwrap", limits=SandboxLimits(memory_mb=256))
    async with await factory.start() as sb:
        await sb.exec("echo hi")

or in one step ``async with await start_sandbox("docker") as sb``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from tether.errors import UserError
from tether.sandbox.base import Sandbox, SandboxLimits

BACKENDS: dict[str, str] = {
    "bwrap": "tether.sandbox.bwrap:BwrapSandbox",
    "docker": "tether.sandbox.docker_backend:DockerSandbox",
    "dummy": "tether.sandbox.dummy:DummySandbox",
}


def backend_names() -> list[str]:
    """The registered backend names."""
    return list(BACKENDS)


def backend_class(name: str) -> type:
    """The sandbox class of backend ``name``; raises ``UserError`` for an unknown name."""
    target = BACKENDS.get(name)
    if target is None:
        raise UserError(f"unknown sandbox backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def backend_unavailable(name: str) -> str | None:
    """Why backend ``name`` cannot run here (``None`` when it can)."""
    if name == "bwrap":
        from tether.sandbox.bwrap import bwrap_available

        ok = bwrap_available()
        return None if ok else "bubblewrap is not installed or cannot create namespaces (apt-get install bubblewrap)"
    if name == "docker":
        from tether.sandbox.docker_backend import docker_available

        ok, why = docker_available()
        return None if ok else why
    backend_class(name)
    return None


def register_backend(name: str, target: str) -> None:
    """Register ``"package.module:Class"`` as backend ``name``."""
    BACKENDS[name] = target


@dataclass
class BackendFactory:
    """A ``SandboxFactory``: backend name + limits + backend options."""

    backend: str = "bwrap"
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    options: dict[str, Any] = field(default_factory=dict)

    def create(self) -> Any:
        """A new, not yet started sandbox."""
        return backend_class(self.backend)(self.limits, **self.options)

    async def start(self) -> Sandbox:
        """Start and return a new sandbox; raises ``SandboxError`` when it cannot start."""
        sandbox = self.create()
        await sandbox.start()
        return sandbox  # type: ignore[no-any-return]


def sandbox_factory(backend: str | None = None, limits: SandboxLimits | None = None, **options: Any) -> BackendFactory:
    """A factory for ``backend`` (default: the ``sandbox_backend`` setting)."""
    if backend is None:
        from tether.config import get_settings

        backend = get_settings().sandbox_backend
    backend_class(backend)  # validate the name early
    return BackendFactory(backend, limits or SandboxLimits(), options)


async def start_sandbox(backend: str | None = None, limits: SandboxLimits | None = None, **options: Any) -> Sandbox:
    """Start one sandbox of ``backend``; use the result as ``async with``."""
    return await sandbox_factory(backend, limits, **options).start()
