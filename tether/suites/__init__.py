"""The suite registry: name -> factory, imported lazily.

``get_suite("calc")``, ``get_suite("rg:countdown")`` (prefix suites pass the rest of the
name to their factory). Suites register here by ``"module:factory"`` path.
"""

from __future__ import annotations

import importlib
from typing import Any

from tether.errors import UserError
from tether.suites.base import RewardFn, Suite

__all__ = ["Suite", "RewardFn", "SUITES", "get_suite", "suite_names"]

#: suite name (or prefix before ':') -> "module:factory"
SUITES: dict[str, str] = {
    "calc": "tether.suites.calc:CalcSuite",
    "format": "tether.suites.format:FormatSuite",
    "indata": "tether.tools.indata.suite:InDataSuite",
    "longctx": "tether.tools.fs.suite:LongCtxSuite",
    "kk": "tether.suites.reasoning:KnightsKnavesSuite",
    "multihop": "tether.suites.reasoning:MultiHopSuite",
    "rg": "tether.suites.reasoning:ReasoningGymSuite",
}


def suite_names() -> list[str]:
    """Registered suite names."""
    return sorted(SUITES)


def get_suite(name: str, **options: Any) -> Suite:
    """Build the suite ``name`` (``prefix:arg`` passes ``arg`` as ``task``); ``UserError`` if unknown."""
    key, sep, arg = name.partition(":")
    target = SUITES.get(key)
    if target is None:
        raise UserError(f"Unknown suite {name!r}; known suites: {', '.join(suite_names())}.")
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"Suite {name!r} is not available: {exc}.") from None
    if sep:
        options["task"] = arg
    suite: Suite = factory(**options)
    return suite
