"""The machinery shared by the shipped suites (``conformance`` and ``escape``).

A check is an async function ``check(ctx) -> str`` that returns how it passed (for an
escape check: how the attack was contained) and raises ``CheckFailed`` otherwise. Each
check gets a fresh sandbox from the factory, so one check cannot spoil the next.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tether.sandbox.base import ExecResult, SandboxLimits


class CheckFailed(AssertionError):
    """A conformance check failed, or an attack was not contained."""


@dataclass
class CheckContext:
    """What a check may use: a started sandbox, the factory that made it, its limits."""

    sandbox: Any
    factory: Any
    limits: SandboxLimits
    backend: str


CheckFn = Callable[[CheckContext], Awaitable[str]]


@dataclass
class Check:
    """One named check of a suite."""

    name: str
    fn: CheckFn
    description: str


@dataclass
class CheckResult:
    """The outcome of one check on one backend."""

    suite: str
    name: str
    backend: str
    passed: bool
    how: str
    seconds: float = 0.0


@dataclass
class Suite:
    """An ordered set of checks; ``@suite.check`` registers one."""

    name: str
    checks: dict[str, Check] = field(default_factory=dict)

    def check(self, fn: CheckFn) -> CheckFn:
        """Register ``fn`` under its name (its docstring's first line is the description)."""
        doc = (fn.__doc__ or fn.__name__).strip().splitlines()[0]
        self.checks[fn.__name__] = Check(fn.__name__, fn, doc)
        return fn

    def names(self) -> list[str]:
        """The check names, in order."""
        return list(self.checks)

    async def run_one(self, name: str, factory: Any, *, timeout: float = 120.0) -> CheckResult:
        """Run one check on a fresh sandbox from ``factory``; never raises."""
        check = self.checks[name]
        start = time.perf_counter()
        sandbox = None
        try:
            sandbox = await factory.start()
            ctx = CheckContext(sandbox, factory, factory.limits, factory.backend)
            how = await asyncio.wait_for(check.fn(ctx), timeout)
            passed = True
        except CheckFailed as exc:
            passed, how = False, str(exc)
        except Exception as exc:
            passed, how = False, f"{type(exc).__name__}: {exc}"
        finally:
            if sandbox is not None:
                try:
                    await sandbox.close()
                except Exception as exc:
                    passed, how = False, f"close failed: {type(exc).__name__}: {exc}"
        return CheckResult(self.name, name, factory.backend, passed, how, time.perf_counter() - start)

    async def run(self, factory: Any, names: list[str] | None = None) -> list[CheckResult]:
        """Run the checks (all, or ``names``) one after another."""
        return [await self.run_one(n, factory) for n in (names or self.names())]


def expect(condition: bool, message: str) -> None:
    """Raise ``CheckFailed(message)`` unless ``condition``."""
    if not condition:
        raise CheckFailed(message)


def show(result: ExecResult) -> str:
    """A short description of an ``ExecResult`` for failure messages."""
    return (
        f"exit={result.exit_code} timed_out={result.timed_out} truncated={result.truncated} "
        f"oom={result.oom_killed} stdout={result.stdout[:200]!r} stderr={result.stderr[:200]!r}"
    )
