"""tether.sandbox: isolated execution for tools that run code or touch files.

``start_sandbox("bwrap" | "docker" | "dummy")`` starts one; ``SandboxPool`` keeps warm
ones; ``conformance`` and ``escape`` are the suites every backend runs. Backends load
lazily (``docker`` is imported only by the docker backend).
"""

from tether.sandbox.base import (
    ExecResult,
    Sandbox,
    SandboxError,
    SandboxFactory,
    SandboxFileNotFound,
    SandboxLimits,
    SandboxPathError,
)
from tether.sandbox.registry import BackendFactory, backend_names, sandbox_factory, start_sandbox

__all__ = [
    "BackendFactory",
    "ExecResult",
    "Sandbox",
    "SandboxError",
    "SandboxFactory",
    "SandboxFileNotFound",
    "SandboxLimits",
    "SandboxPathError",
    "backend_names",
    "sandbox_factory",
    "start_sandbox",
]
