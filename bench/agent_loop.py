"""Per-turn cost of tether's agent loop against a bare LangGraph loop, measured in one run.

tether: the real ``Agent`` (LangGraph graph, tool-call parsing and validation, SQLite
store on, LangGraph checkpointer on) with a scripted model and a no-op tool.
Bare: a two-node LangGraph ``StateGraph`` with the same scripted model outputs and the
same no-op tool, no store, no checkpointer, no validation.

Targets (issue 2): one episode at most 1.5x the bare loop per turn; 100 concurrent
episodes at least 80% of the bare loop's turns per second.

    python bench/agent_loop.py [--turns 40] [--episodes 100] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

import tether
from tether.store import open_store
from tether.suites.base import Suite
from tether.tools.base import ToolSet, tool
from tether.tools.calls import format_tool_call
from tether.types import Completion, Message, SamplingParams, Task

CALL = format_tool_call("noop", {"x": 1})
FINISH = format_tool_call("finish", {"answer": "ok"})


class NoopTools(ToolSet):
    name = "noop"

    @tool
    async def noop(self, x: int) -> str:
        """Do nothing.

        Args:
            x: ignored
        """
        return "ok"

    @tool(terminal=True)
    async def finish(self, answer: str) -> str:
        """Finish.

        Args:
            answer: the answer
        """
        return answer


class NoopSuite(Suite):
    name = "noop"

    def tasks(self, *, n: int | None = None, seed: int = 0, split: str = "test") -> list[Task]:
        return [Task(id=f"noop-{i}", suite="noop", prompt="go") for i in range(n or 1)]

    def toolset(self, task: Task) -> ToolSet:
        return NoopTools()


class CountingModel:
    """The fake model both loops use: calls ``noop`` until its turn ``turns``, then ``finish``."""

    name = "counting"
    policy_version = 0

    def __init__(self, turns: int) -> None:
        self.turns = turns

    async def generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        done = sum(1 for m in messages if m.role == "assistant")
        text = FINISH if done + 1 >= self.turns else CALL
        ids = list(text.encode())
        return Completion(text=text, token_ids=ids, logprobs=[0.0] * len(ids), model=self.name)

    async def stream(self, messages: list[Message], params: SamplingParams) -> AsyncIterator[str | Completion]:
        completion = await self.generate(messages, params)
        yield completion.text
        yield completion

    async def aclose(self) -> None:
        return None


# ----- bare LangGraph loop -----


class BareState(TypedDict):
    messages: Annotated[list[dict[str, Any]], operator.add]
    done: bool


_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def bare_graph(model: CountingModel) -> Any:
    async def noop(x: int) -> str:
        return "ok"

    async def model_node(state: BareState) -> dict[str, Any]:
        msgs = [Message(role=m["role"], content=m["content"]) for m in state["messages"]]
        completion = await model.generate(msgs, SamplingParams())
        return {"messages": [{"role": "assistant", "content": completion.text}]}

    async def tool_node(state: BareState) -> dict[str, Any]:
        call = json.loads(_BLOCK.findall(state["messages"][-1]["content"])[0])
        if call["name"] == "finish":
            return {"done": True, "messages": []}
        return {"messages": [{"role": "tool", "content": await noop(**call["arguments"])}]}

    g = StateGraph(BareState)
    g.add_node("model", model_node)
    g.add_node("tools", tool_node)
    g.add_edge(START, "model")
    g.add_edge("model", "tools")
    g.add_conditional_edges("tools", lambda s: END if s["done"] else "model")
    return g.compile()


async def bare_episodes(n: int, turns: int) -> float:
    """Seconds to run ``n`` concurrent bare episodes of ``turns`` model turns."""
    graph = bare_graph(CountingModel(turns))
    start = time.perf_counter()
    await asyncio.gather(
        *(
            graph.ainvoke(
                {"messages": [{"role": "user", "content": "go"}], "done": False}, {"recursion_limit": 4 * turns}
            )
            for _ in range(n)
        )
    )
    return time.perf_counter() - start


async def tether_episodes(n: int, turns: int, db_url: str, checkpoint: bool = True) -> float:
    """Seconds to run ``n`` concurrent tether episodes (SQLite store on; LangGraph checkpointer on by default)."""
    store = await open_store(db_url)
    try:
        async with tether.Agent(
            suite=NoopSuite(), model=CountingModel(turns), store=store, max_turns=turns + 1, checkpoint=checkpoint
        ) as agent:

            async def one() -> None:
                episode = await agent.run("go")
                assert episode.status == "done", episode.error

            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(n)))
            return time.perf_counter() - start
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    async def measure() -> dict[str, Any]:
        tmp = Path(tempfile.mkdtemp(prefix="tether-bench-"))
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        await tether_episodes(2, 3, url)  # warm up: migrations, imports
        await bare_episodes(2, 3)
        single_bare, single_tether, conc_bare, conc_tether = [], [], [], []
        single_nocp, conc_nocp = [], []
        work = args.episodes * args.turns
        for _ in range(args.repeats):
            single_bare.append(await bare_episodes(1, args.turns) / args.turns)
            single_tether.append(await tether_episodes(1, args.turns, url) / args.turns)
            single_nocp.append(await tether_episodes(1, args.turns, url, checkpoint=False) / args.turns)
            conc_bare.append(work / await bare_episodes(args.episodes, args.turns))
            conc_tether.append(work / await tether_episodes(args.episodes, args.turns, url))
            conc_nocp.append(work / await tether_episodes(args.episodes, args.turns, url, checkpoint=False))
        sb, st = statistics.median(single_bare), statistics.median(single_tether)
        cb, ct = statistics.median(conc_bare), statistics.median(conc_tether)
        sn, cn = statistics.median(single_nocp), statistics.median(conc_nocp)
        return {
            "turns_per_episode": args.turns,
            "concurrent_episodes": args.episodes,
            "single_ms_per_turn_bare": sb * 1000,
            "single_ms_per_turn_tether": st * 1000,
            "single_ratio_tether_over_bare": st / sb,
            "single_target_max": 1.5,
            "single_ms_per_turn_tether_no_checkpointer": sn * 1000,
            "single_ratio_no_checkpointer": sn / sb,
            "concurrent_turns_per_s_tether_no_checkpointer": cn,
            "concurrent_ratio_no_checkpointer": cn / cb,
            "concurrent_turns_per_s_bare": cb,
            "concurrent_turns_per_s_tether": ct,
            "concurrent_ratio_tether_over_bare": ct / cb,
            "concurrent_target_min": 0.8,
        }

    result = asyncio.run(measure())
    if args.json:
        print(json.dumps(result))
        return
    print(f"single episode, {result['turns_per_episode']} turns:")
    print(f"  bare LangGraph   {result['single_ms_per_turn_bare']:.3f} ms/turn")
    print(f"  tether (SQLite)  {result['single_ms_per_turn_tether']:.3f} ms/turn")
    print(f"  ratio            {result['single_ratio_tether_over_bare']:.2f}x  (target <= 1.5x)")
    print(f"  without the LangGraph checkpointer: {result['single_ratio_no_checkpointer']:.2f}x")
    print(f"{result['concurrent_episodes']} concurrent episodes:")
    print(f"  bare LangGraph   {result['concurrent_turns_per_s_bare']:.0f} turns/s")
    print(f"  tether (SQLite)  {result['concurrent_turns_per_s_tether']:.0f} turns/s")
    print(f"  ratio            {result['concurrent_ratio_tether_over_bare']:.2f}  (target >= 0.8)")
    print(f"  without the LangGraph checkpointer: {result['concurrent_ratio_no_checkpointer']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
