"""A scripted expert policy for ``longctx``: grep, read, follow the chain, count.

``ExpertModel`` is a ``ChatModel`` that writes ``<tool_call>`` turns, so it runs through
the real agent loop and the real fs tools. It never sees gold answers: each turn is
decided from the question and the tool results in the conversation so far.

- needle:   grep ``^The access code for Project X is`` -> the code
- multihop: grep ``^A's manager is`` -> B; grep ``^B's office is in`` -> the city
- count:    shell ``rg -l '^Incident report filed by the T team on YYYY-' | wc -l``
- sum:      shell ``rg -o -r '$1' '^Shipment log: the T team shipped (\\d+) units on YYYY-' | awk sum``

Without tools (the ``full``/``rag`` baselines) it applies the same patterns to the text
in the prompt, which makes it an upper bound on what those contexts allow.
Model spec: ``expert`` (``expert:longctx``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from tether.tools.calls import OPEN, format_tool_call
from tether.types import Completion, Message, SamplingParams

_Q_NEEDLE = re.compile(r"access code for Project (.+?)\?")
_Q_MULTI = re.compile(r"office of (.+?)'s manager\?")
_Q_COUNT = re.compile(r"How many incident reports did the (\w+) team file in (\d{4})\?")
_Q_SUM = re.compile(r"How many units did the (\w+) team ship in total in (\d{4})\?")
_CODE = re.compile(r"access code for Project .+? is ([A-Z]{2}-\d{4})\.")
_MANAGER = re.compile(r"'s manager is ([A-Z][a-z]+ [A-Z][a-z]+)\.")
_CITY = re.compile(r"'s office is in ([A-Z][a-z]+)\.")
_NUMBER = re.compile(r"^\s*(\d+)\s*$", re.MULTILINE)
UNKNOWN = "unknown"


def _question(messages: list[Message]) -> str:
    for m in messages:
        if m.role == "user":
            q = m.content.rsplit("Question:", 1)
            return q[-1].strip()
    return ""


class ExpertModel:
    """The scripted expert policy for the longctx suite (a ``ChatModel``)."""

    def __init__(self, name: str = "expert:longctx") -> None:
        self.name = name
        self.policy_version = 0

    def decide(self, messages: list[Message]) -> str:
        """The next assistant turn: a tool call, or the final answer."""
        question = _question(messages)
        tools_offered = any(m.role == "system" and OPEN in m.content for m in messages)
        results = [m.content for m in messages if m.role == "tool"]
        if not tools_offered:
            context = next((m.content for m in messages if m.role == "user"), "")
            return self._from_text(question, context)
        if m := _Q_NEEDLE.search(question):
            if not results:
                return _grep(f"^The access code for Project {rg_escape(m.group(1))} is ")
            return _first(_CODE, results[-1])
        if m := _Q_MULTI.search(question):
            if not results:
                return _grep(f"^{rg_escape(m.group(1))}'s manager is ")
            manager = _first(_MANAGER, results[0])
            if manager == UNKNOWN:
                return UNKNOWN
            if len(results) == 1:
                return _grep(f"^{rg_escape(manager)}'s office is in ")
            return _first(_CITY, results[-1])
        if m := _Q_COUNT.search(question):
            if not results:
                pattern = f"^Incident report filed by the {m.group(1)} team on {m.group(2)}-"
                return format_tool_call("shell", {"command": f"rg --no-config -uu -l -e '{pattern}' /corpus | wc -l"})
            return _first(_NUMBER, results[-1])
        if m := _Q_SUM.search(question):
            if not results:
                pattern = f"^Shipment log: the {m.group(1)} team shipped ([0-9]+) units on {m.group(2)}-"
                command = (
                    f"rg --no-config -uu -N -I -o -r '$1' -e '{pattern}' /corpus | awk '{{s+=$1}} END {{print s+0}}'"
                )
                return format_tool_call("shell", {"command": command})
            return _first(_NUMBER, results[-1])
        return UNKNOWN

    def _from_text(self, question: str, context: str) -> str:
        """Answer from text in the prompt only (the full / rag baselines)."""
        if m := _Q_NEEDLE.search(question):
            project = re.escape(m.group(1))
            found = re.search(rf"^The access code for Project {project} is ([A-Z]{{2}}-\d{{4}})\.", context, re.M)
            return found.group(1) if found else UNKNOWN
        if m := _Q_MULTI.search(question):
            boss = re.search(rf"^{re.escape(m.group(1))}'s manager is ([A-Z][a-z]+ [A-Z][a-z]+)\.", context, re.M)
            if not boss:
                return UNKNOWN
            city = re.search(rf"^{re.escape(boss.group(1))}'s office is in ([A-Z][a-z]+)\.", context, re.M)
            return city.group(1) if city else UNKNOWN
        if m := _Q_COUNT.search(question):
            pat = rf"^Incident report filed by the {m.group(1)} team on {m.group(2)}-"
            return str(len(re.findall(pat, context, re.M)))
        if m := _Q_SUM.search(question):
            pat = rf"^Shipment log: the {m.group(1)} team shipped (\d+) units on {m.group(2)}-"
            return str(sum(int(x) for x in re.findall(pat, context, re.M)))
        return UNKNOWN

    async def generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        """The next turn as a completion (token ids are the UTF-8 bytes, logprob 0)."""
        text = self.decide(messages)
        ids = list(text.encode("utf-8"))
        return Completion(
            text=text, token_ids=ids, logprobs=[0.0] * len(ids), model=self.name, policy_version=self.policy_version
        )

    async def stream(self, messages: list[Message], params: SamplingParams) -> AsyncIterator[str | Completion]:
        """One delta with the whole turn, then the completion."""
        completion = await self.generate(messages, params)
        yield completion.text
        yield completion

    async def aclose(self) -> None:
        """Nothing to release."""


def rg_escape(text: str) -> str:
    """Escape regex metacharacters for ripgrep (which, unlike ``re.escape``, rejects ``\\ ``)."""
    return re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", text)


def _grep(pattern: str) -> str:
    return format_tool_call("grep", {"pattern": pattern, "path": "/corpus", "max_results": 5})


def _first(pattern: re.Pattern[str], text: str) -> str:
    m = pattern.search(text)
    return m.group(1) if m else UNKNOWN


def from_spec(rest: str = "", **options: object) -> ExpertModel:
    """Model-registry factory for the ``expert`` spec (``expert`` or ``expert:longctx``)."""
    return ExpertModel(name=f"expert:{rest or 'longctx'}")
