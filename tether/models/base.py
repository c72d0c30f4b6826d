"""The ``ChatModel`` seam: one async interface every model backend implements.

A backend turns a list of chat messages into a ``Completion`` holding the text and the
exact sampled token ids with their logprobs. ``stream`` yields text deltas as they are
produced and ends with the full ``Completion``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from tether.types import Completion, Message, SamplingParams


@runtime_checkable
class ChatModel(Protocol):
    """An async chat model that reports what it sampled.

    Errors: ``tether.errors.ModelError`` (and subclasses) for every backend failure,
    e.g. an unreachable server or a script that ran out.
    """

    name: str
    policy_version: int

    async def generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        """Sample one assistant turn for ``messages``."""
        ...

    def stream(self, messages: list[Message], params: SamplingParams) -> AsyncIterator[str | Completion]:
        """Yield text deltas as they are sampled; the last item is the full ``Completion``."""
        ...

    async def aclose(self) -> None:
        """Release resources (connections, threads)."""
        ...


async def stream_by_generate(
    model: ChatModel, messages: list[Message], params: SamplingParams
) -> AsyncIterator[str | Completion]:
    """A ``stream`` for backends that cannot stream: one delta, then the completion."""
    completion = await model.generate(messages, params)
    if completion.text:
        yield completion.text
    yield completion
