"""``ScriptedModel``: the fake ``ChatModel`` that replays scripted outputs, for tests.

A script is a list of strings (or a JSONL file of ``{"text": ...}`` lines or JSON
strings). Each ``generate`` call returns the next entry; when the script runs out it
raises ``ScriptExhausted``. Token ids are the UTF-8 bytes of the text (so they are
exact and stable), with logprob 0.0 each.

With ``by_turn=True`` (a JSONL file whose lines carry ``"turn": K``) the output is
chosen by the number of assistant messages already in the conversation, so every
episode replays the same script and an interrupted episode can be resumed. A line's
``"delay_s"`` makes that output take that long (to test interruption).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from tether.errors import ScriptExhausted, UserError
from tether.types import Completion, Message, SamplingParams


def _encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


class ScriptedModel:
    """Replays ``outputs`` in order; raises ``ScriptExhausted`` when they run out."""

    def __init__(
        self,
        outputs: Sequence[str],
        name: str = "scripted",
        chunk_size: int = 8,
        *,
        by_turn: bool = False,
        delays: Sequence[float] | None = None,
    ) -> None:
        self.outputs = list(outputs)
        self.by_turn = by_turn
        self.delays = list(delays) if delays is not None else [0.0] * len(self.outputs)
        self.name = name
        self.policy_version = 0
        self.calls: list[list[Message]] = []
        self._next = 0
        self._chunk = chunk_size

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedModel:
        """Load a JSONL script: each line a JSON string or an object with a ``text`` key."""
        p = Path(path)
        if not p.is_file():
            raise UserError(f"Scripted model file {str(p)!r} does not exist.")
        outputs: list[str] = []
        delays: list[float] = []
        turns: list[int] = []
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"Line {n} of {p} is not JSON: {exc.msg}.") from None
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                outputs.append(item["text"])
                delays.append(float(item.get("delay_s", 0.0)))
                if "turn" in item:
                    turns.append(int(item["turn"]))
            elif isinstance(item, str):
                outputs.append(item)
                delays.append(0.0)
            else:
                raise UserError(f"Line {n} of {p} must be a JSON string or an object with a 'text' string.")
        by_turn = bool(turns)
        if by_turn and turns != list(range(len(outputs))):
            raise UserError(f"The 'turn' keys in {p} must be 0, 1, 2, ... on every line, in order.")
        return cls(outputs, name=f"scripted:{p.name}", by_turn=by_turn, delays=delays)

    @property
    def remaining(self) -> int:
        """How many scripted outputs are left (in order mode)."""
        return len(self.outputs) - self._next

    def _position(self, messages: list[Message]) -> int:
        if self.by_turn:
            return sum(1 for m in messages if m.role == "assistant")
        position = self._next
        self._next += 1
        return position

    def _take(self, messages: list[Message]) -> tuple[Completion, float]:
        position = self._position(messages)
        if position >= len(self.outputs):
            raise ScriptExhausted(f"scripted model ran out after {len(self.outputs)} outputs")
        text = self.outputs[position]
        self.calls.append(list(messages))
        prompt = _encode("".join(m.content for m in messages))
        ids = _encode(text)
        completion = Completion(
            text=text,
            token_ids=ids,
            logprobs=[0.0] * len(ids),
            prompt_token_ids=prompt,
            model=self.name,
            policy_version=self.policy_version,
        )
        return completion, self.delays[position] if position < len(self.delays) else 0.0

    async def generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        """Return the next scripted output."""
        completion, delay = self._take(messages)
        if delay > 0:
            await asyncio.sleep(delay)
        return completion

    async def stream(self, messages: list[Message], params: SamplingParams) -> AsyncIterator[str | Completion]:
        """Yield the next scripted output in chunks of ``chunk_size`` characters, then the completion."""
        completion, delay = self._take(messages)
        if delay > 0:
            await asyncio.sleep(delay)
        for i in range(0, len(completion.text), self._chunk):
            yield completion.text[i : i + self._chunk]
        yield completion

    async def aclose(self) -> None:
        """Nothing to release."""
