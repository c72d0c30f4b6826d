"""Model backends behind the ``ChatModel`` protocol, chosen by a spec string.

Specs:
  ``local`` / ``local:/path/to/hf_folder``  torch + transformers on the CPU (embedded SmolLM2 by default)
  ``openai:http://HOST:PORT/v1#MODEL``      any OpenAI-compatible server (vLLM)
  ``vllm:/path/to/hf_folder``               vLLM's async engine in-process
  ``scripted:FILE.jsonl``                   replays scripted outputs (tests)
  ``expert`` / ``oracle``                   scripted policies of the longctx / indata suites

Backends import their heavy dependency only when built.
"""

from __future__ import annotations

import importlib
from typing import Any

from tether.errors import UserError
from tether.models.base import ChatModel
from tether.models.scripted import ScriptedModel

__all__ = ["ChatModel", "ScriptedModel", "load_model", "BACKENDS"]

#: spec prefix -> "module:factory"; the factory takes the part after the colon.
BACKENDS: dict[str, str] = {
    "local": "tether.models.local:from_spec",
    "openai": "tether.models.openai_compat:from_spec",
    "vllm": "tether.models.vllm_engine:from_spec",
    "scripted": "tether.models.scripted_spec:from_spec",
    # scripted expert policies of the benchmark suites (they prove the tools suffice)
    "expert": "tether.tools.fs.expert:from_spec",
    "oracle": "tether.tools.indata.oracle:from_spec",
}


def load_model(spec: str, **options: Any) -> ChatModel:
    """Build a ``ChatModel`` from a spec string; raises ``UserError`` on an unknown spec."""
    kind, _, rest = spec.partition(":")
    target = BACKENDS.get(kind)
    if target is None:
        known = ", ".join(sorted(BACKENDS))
        raise UserError(f"Unknown model spec {spec!r}: it must start with one of {known}.")
    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    model: ChatModel = factory(rest, **options)
    try:
        model.spec = spec  # type: ignore[attr-defined]  # remembered so stored runs can rebuild the model
    except AttributeError:
        pass
    return model
