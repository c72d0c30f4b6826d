"""The streaming ``<think>``/``<answer>`` tag parser behind the tagged reasoning modes.

``TagParser.feed(delta)`` consumes streamed text and returns the answers whose closing
``</answer>`` arrived in that delta; ``close()`` ends the turn and returns a
``ParseReport`` listing every block and *every* defect found, each as one sentence that
says what was wrong and at which character.

Rules (the interleaved format of arXiv 2505.19640):

* a well-formed response is ``<think>…</think><answer>…</answer>`` repeated one or more
  times (whitespace allowed between blocks): it starts with ``<think>``, alternates, and
  ends with ``<answer>``;
* tags are exact and case-sensitive; a tag may be split across deltas (the parser holds
  back a trailing partial tag until it is complete);
* non-whitespace text outside every block is a defect; so are nested tags, stray and
  mismatched closing tags, and blocks left open at the end;
* an answer is emitted the moment its ``</answer>`` closes, even when the block is
  nested or otherwise malformed (the defect is still reported). Text of a ``<think>``
  nested inside an ``<answer>`` is not part of the answer;
* ``<tool_call>…</tool_call>`` blocks (tether's tool-call format) are opaque: their body is
  not parsed for tags and they are neutral for the format wherever they appear, except
  inside an ``<answer>`` (a defect). A turn that calls a tool is not required to contain
  an answer, nor to end with one.

Feeding a text at once or in any number of pieces gives the same answers, blocks and
problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tether.agents.reasoning import ParseReport

BlockKind = Literal["think", "answer", "tool_call"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"

_TAGS: dict[str, tuple[BlockKind, bool]] = {
    THINK_OPEN: ("think", True),
    THINK_CLOSE: ("think", False),
    ANSWER_OPEN: ("answer", True),
    ANSWER_CLOSE: ("answer", False),
    CALL_OPEN: ("tool_call", True),
    CALL_CLOSE: ("tool_call", False),
}
_SNIPPET = 40


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."


@dataclass
class Block:
    """One tagged block of a response.

    ``start`` is the offset of its opening tag, ``end`` the offset just after its closing
    tag (None while open / when never closed), ``depth`` 0 for top-level blocks and
    ``first_char`` the offset of the first non-whitespace character of its own text.
    """

    kind: BlockKind
    start: int
    depth: int
    text: str = ""
    end: int | None = None
    first_char: int | None = None

    @property
    def closed(self) -> bool:
        """Whether the block's closing tag arrived."""
        return self.end is not None


@dataclass
class TagReport(ParseReport):
    """A ``ParseReport`` with the blocks in order of opening and the response length."""

    blocks: list[Block] = field(default_factory=list)
    tool_calls: int = 0
    length: int = 0

    @property
    def ok(self) -> bool:
        """Whether the response was well formed (no problems)."""
        return not self.problems

    def top_level(self, kind: BlockKind | None = None) -> list[Block]:
        """Top-level blocks (optionally of one kind), in order."""
        return [b for b in self.blocks if b.depth == 0 and (kind is None or b.kind == kind)]

    def closed_answers(self) -> list[Block]:
        """Every closed answer block in order of closing (the emitted answers)."""
        return sorted((b for b in self.blocks if b.kind == "answer" and b.closed), key=lambda b: b.end or 0)


class TagParser:
    """Incremental parser of one model turn in the think/answer format (see the module doc).

    ``expect_pairs`` (think-answer mode) additionally requires exactly one ``<think>``
    and one ``<answer>`` block.
    """

    def __init__(self, *, expect_pairs: int | None = None) -> None:
        self._buf = ""
        self._pos = 0  # offset of self._buf[0] in the whole response
        self._stack: list[Block] = []
        self._blocks: list[Block] = []
        self._answers: list[str] = []
        self._problems: list[str] = []
        self._first_answer_char: int | None = None
        self._outside_start: int | None = None
        self._outside_text = ""
        self._tool_calls = 0
        self._closed = False
        self._expect_pairs = expect_pairs
        self._report: TagReport | None = None

    # ----- feeding -----

    def feed(self, delta: str) -> list[str]:
        """Consume ``delta``; return the answers whose ``</answer>`` arrived in it."""
        if self._closed:
            raise RuntimeError("TagParser.feed called after close()")
        self._buf += delta
        return self._scan(final=False)

    def close(self) -> TagReport:
        """End the turn: flush held-back text and return the full report (idempotent)."""
        if self._report is not None:
            return self._report
        self._scan(final=True)
        self._closed = True
        self._flush_outside()
        end = self._pos
        for block in reversed(self._stack):
            self._problems.append(f"<{block.kind}> opened at char {block.start} is never closed.")
        self._stack.clear()
        self._check_structure(end)
        self._report = TagReport(
            answers=list(self._answers),
            problems=list(self._problems),
            first_answer_char=self._first_answer_char,
            blocks=list(self._blocks),
            tool_calls=self._tool_calls,
            length=end,
        )
        return self._report

    def _scan(self, *, final: bool) -> list[str]:
        emitted: list[str] = []
        buf, i, n = self._buf, 0, len(self._buf)
        text_start = 0
        in_call = bool(self._stack) and self._stack[-1].kind == "tool_call"
        while i < n:
            j = buf.find("<", i)
            if j < 0:
                i = n
                break
            rest = buf[j : j + len(CALL_CLOSE)]
            tag = self._match_tag(buf, j, in_call)
            if tag is None:
                if not final and self._is_partial_tag(rest, in_call) and j + len(rest) == n:
                    # a tag may be arriving: hold back from here
                    self._text(buf[text_start:j], self._pos + text_start)
                    self._buf = buf[j:]
                    self._pos += j
                    return emitted
                i = j + 1
                continue
            self._text(buf[text_start:j], self._pos + text_start)
            answer = self._tag(tag, self._pos + j)
            if answer is not None:
                emitted.append(answer)
            i = j + len(tag)
            text_start = i
            in_call = bool(self._stack) and self._stack[-1].kind == "tool_call"
        self._text(buf[text_start:n], self._pos + text_start)
        self._pos += n
        self._buf = ""
        return emitted

    @staticmethod
    def _match_tag(buf: str, j: int, in_call: bool) -> str | None:
        if in_call:
            return CALL_CLOSE if buf.startswith(CALL_CLOSE, j) else None
        for tag in _TAGS:
            if buf.startswith(tag, j):
                return tag
        return None

    @staticmethod
    def _is_partial_tag(rest: str, in_call: bool) -> bool:
        candidates = (CALL_CLOSE,) if in_call else tuple(_TAGS)
        return any(t.startswith(rest) and len(rest) < len(t) for t in candidates)

    # ----- events -----

    def _text(self, text: str, offset: int) -> None:
        if not text:
            return
        if not self._stack:
            if self._outside_start is None:
                stripped = text.lstrip()
                if not stripped:
                    return
                self._outside_start = offset + len(text) - len(stripped)
            self._outside_text += text
            return
        block = self._stack[-1]
        if block.kind == "tool_call":
            return
        if block.first_char is None:
            stripped = text.lstrip()
            if stripped:
                block.first_char = offset + len(text) - len(stripped)
        block.text += text

    def _flush_outside(self) -> None:
        if self._outside_start is not None:
            self._problems.append(
                f"text outside <think>/<answer> tags at char {self._outside_start}: {_snippet(self._outside_text)!r}."
            )
        self._outside_start = None
        self._outside_text = ""

    def _tag(self, tag: str, offset: int) -> str | None:
        kind, opening = _TAGS[tag]
        if not self._stack:
            self._flush_outside()
        if opening:
            if self._stack:
                outer = self._stack[-1]
                if kind == "tool_call" and outer.kind == "think":
                    pass  # a tool call while thinking is fine
                else:
                    self._problems.append(
                        f"{tag} at char {offset} is nested inside <{outer.kind}> opened at char {outer.start}."
                    )
            block = Block(kind=kind, start=offset, depth=len(self._stack))
            if kind == "tool_call":
                self._tool_calls += 1
            self._stack.append(block)
            self._blocks.append(block)
            return None
        # a closing tag
        index = next((k for k in range(len(self._stack) - 1, -1, -1) if self._stack[k].kind == kind), None)
        if index is None:
            self._problems.append(f"{tag} at char {offset} closes nothing (no <{kind}> is open).")
            return None
        for inner in reversed(self._stack[index + 1 :]):
            self._problems.append(
                f"{tag} at char {offset} closes <{kind}> while <{inner.kind}> opened at char {inner.start} "
                "is still open."
            )
        del self._stack[index + 1 :]
        block = self._stack.pop()
        block.end = offset + len(tag)
        if kind != "answer":
            return None
        answer = block.text.strip()
        if self._first_answer_char is None:
            self._first_answer_char = block.first_char if block.first_char is not None else offset
        self._answers.append(answer)
        return answer

    # ----- structure -----

    def _check_structure(self, end: int) -> None:
        top = [b for b in self._blocks if b.depth == 0 and b.kind != "tool_call"]
        called = self._tool_calls > 0
        if not top:
            if not called:
                self._problems.append("no <think> or <answer> block found.")
            return
        if top[0].kind != "think":
            self._problems.append(f"the response starts with <answer> at char {top[0].start}, not with <think>.")
        for prev, cur in zip(top, top[1:], strict=False):
            if prev.kind == cur.kind:
                self._problems.append(
                    f"two <{cur.kind}> blocks in a row (chars {prev.start} and {cur.start}): "
                    "<think> and <answer> must alternate."
                )
        if top[-1].kind != "answer" and not called:
            self._problems.append(f"the response ends with <think> at char {top[-1].start}, not with an <answer>.")
        if self._expect_pairs is not None:
            thinks = sum(1 for b in top if b.kind == "think")
            answers = sum(1 for b in top if b.kind == "answer")
            want = self._expect_pairs
            if thinks > want or answers > want:
                self._problems.append(
                    f"expected {want} <think> block and {want} <answer> block, got {thinks} and {answers}."
                )


def parse_response(text: str, *, expect_pairs: int | None = None) -> TagReport:
    """Parse a whole response at once (same result as feeding it in pieces)."""
    parser = TagParser(expect_pairs=expect_pairs)
    parser.feed(text)
    return parser.close()
