"""Spec factory for ``scripted:FILE.jsonl``."""

from __future__ import annotations

from typing import Any

from tether.errors import UserError
from tether.models.scripted import ScriptedModel


def from_spec(rest: str, **options: Any) -> ScriptedModel:
    """Build a ``ScriptedModel`` from the file named after ``scripted:``."""
    if not rest:
        raise UserError("The scripted model spec needs a file: scripted:FILE.jsonl.")
    return ScriptedModel.from_file(rest)
