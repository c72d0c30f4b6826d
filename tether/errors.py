"""Exception types shared across tether.

``ToolError`` is the only exception a tool may raise on purpose: it goes back to the
model as an observation. ``UserError`` is bad input from a person (CLI, API) and is
printed as one sentence with exit code 2. Everything else is a bug.
"""

from __future__ import annotations


class TetherError(Exception):
    """Base class of every tether exception."""


class ToolError(TetherError):
    """A tool call the model made was wrong; the message teaches the model how to fix it."""


class UserError(TetherError):
    """Bad input from a person: printed as one clear sentence, exit code 2."""


class ModelError(TetherError):
    """A model backend failed (unreachable server, script ran out, bad response)."""


class ScriptExhausted(ModelError):
    """A ``ScriptedModel`` was asked for more turns than its script holds."""


class StoreError(TetherError):
    """The trajectory store failed or was given an unusable URL."""
