"""Per-turn cost of tether's agent loop against a bare LangGraph loop, measured in one run.

Four loops run interleaved, ``--repeats`` times each; the medians are compared:

- **bare**: a two-node LangGraph ``StateGraph`` (model -> tool -> back) with the same
  scripted model outputs and the same no-op tool: no store, no checkpointer, no validation.
- **bare + LangGraph checkpoints**: the same graph with a checkpointer whose saver keeps
  nothing (``NullSaver``), run with ``durability="sync"`` as tether runs its graph, so what
  is measured is LangGraph's own per-step checkpoint work.
- **tether**: the real ``Agent`` (LangGraph graph, tool-call parsing and validation, every
  step written to the SQLite store and committed), checkpointer off.
- **tether + checkpoints**: the same with the LangGraph checkpointer on (the default),
  its checkpoints kept in the same SQLite database.

Targets (issue 2): one episode at most 1.5x the bare loop per turn; 100 concurrent
episodes at least 80% of the bare loop's turns per second. They are checked twice: tether
against bare (the store's cost), and tether + checkpoints against bare + LangGraph
checkpoints (tether's cost on top of LangGraph's checkpointing, which the bare loop does
not do). tether + checkpoints against plain bare is printed too.

    python bench/agent_loop.py [--turns 20] [--episodes 100] [--repeats 5] [--sequential 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import operator
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
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


class NullSaver(BaseCheckpointSaver[int]):
    """A LangGraph saver that keeps nothing: LangGraph still builds and hands over every checkpoint."""

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        return {"configurable": {**config["configurable"], "checkpoint_id": checkpoint["id"]}}

    async def aput_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        return None

    async def aget_tuple(self, config: Any) -> Any:
        return None


class BareState(TypedDict):
    messages: Annotated[list[Message], operator.add]
    done: bool


_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def bare_graph(model: CountingModel, checkpointer: Any = None) -> Any:
    """The baseline: model node -> tool node -> back, messages kept in the graph state."""

    async def noop(x: int) -> str:
        return "ok"

    async def model_node(state: BareState) -> dict[str, Any]:
        completion = await model.generate(state["messages"], SamplingParams())
        return {"messages": [Message(role="assistant", content=completion.text)]}

    async def tool_node(state: BareState) -> dict[str, Any]:
        call = json.loads(_BLOCK.findall(state["messages"][-1].content)[0])
        if call["name"] == "finish":
            return {"done": True, "messages": []}
        return {"messages": [Message(role="tool", content=await noop(**call["arguments"]))]}

    async def route(state: BareState) -> str:
        return END if state["done"] else "model"

    g = StateGraph(BareState)
    g.add_node("model", model_node)
    g.add_node("tools", tool_node)
    g.add_edge(START, "model")
    g.add_edge("model", "tools")
    g.add_conditional_edges("tools", route)
    return g.compile(checkpointer=checkpointer)


async def bare_episodes(graph: Any, n: int, turns: int) -> float:
    """Seconds to run ``n`` concurrent episodes of a compiled bare graph (``bare_graph``).

    With a checkpointer the graph runs with ``durability="sync"``, as tether's agent does.
    """
    options: dict[str, Any] = {"durability": "sync"} if graph.checkpointer is not None else {}
    start = time.perf_counter()
    await asyncio.gather(
        *(
            graph.ainvoke(
                {"messages": [Message(role="user", content="go")], "done": False},
                {"recursion_limit": 4 * turns, "configurable": {"thread_id": uuid.uuid4().hex}},
                **options,
            )
            for _ in range(n)
        )
    )
    return time.perf_counter() - start


async def tether_episodes(agent: tether.Agent, n: int) -> float:
    """Seconds to run ``n`` concurrent episodes of an open tether ``Agent``."""

    async def one() -> None:
        episode = await agent.run("go")
        assert episode.status == "done", episode.error

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - start


def open_agent(store: Any, turns: int, checkpoint: bool) -> tether.Agent:
    """The tether agent of the bench: no-op suite, counting model, budgets that never end an episode early."""
    return tether.Agent(
        suite=NoopSuite(),
        model=CountingModel(turns),
        store=store,
        max_turns=turns + 1,
        max_new_tokens=100 * turns,
        checkpoint=checkpoint,
    )


LOOPS = ("bare", "bare_ckpt", "tether", "tether_ckpt")
#: the ratios checked against the targets: tether against bare, each with and without checkpoints
PAIRS = {"tether_over_bare": "tether / bare", "tether_ckpt_over_bare_ckpt": "tether+checkpoints / bare+checkpoints"}
LABELS = {
    "bare": "bare LangGraph",
    "bare_ckpt": "bare + LangGraph checkpoints",
    "tether": "tether (SQLite store)",
    "tether_ckpt": "tether + checkpoints (default)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sequential", type=int, default=5, help="single episodes per sample")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    async def measure() -> dict[str, Any]:
        tmp = Path(tempfile.mkdtemp(prefix="tether-bench-"))
        store = await open_store(f"sqlite:///{tmp / 'bench.db'}")
        async with contextlib.AsyncExitStack() as stack:
            # every loop is built once and warmed up; the timed runs measure steady-state turns
            runners: dict[str, Callable[[int], Awaitable[float]]] = {}
            for loop in LOOPS:
                if loop.startswith("bare"):
                    graph = bare_graph(CountingModel(args.turns), NullSaver() if loop == "bare_ckpt" else None)
                    runners[loop] = functools.partial(bare_episodes, graph, turns=args.turns)
                else:
                    agent = await stack.enter_async_context(open_agent(store, args.turns, loop == "tether_ckpt"))
                    runners[loop] = functools.partial(tether_episodes, agent)
                await runners[loop](2)
            result = await compare(runners)
        await store.close()
        return result

    async def compare(runners: dict[str, Callable[[int], Awaitable[float]]]) -> dict[str, Any]:
        single: dict[str, list[float]] = {loop: [] for loop in LOOPS}
        concurrent: dict[str, list[float]] = {loop: [] for loop in LOOPS}
        work = args.episodes * args.turns
        for _ in range(args.repeats):
            for loop in LOOPS:  # one episode at a time, ``--sequential`` of them per sample
                seconds = sum([await runners[loop](1) for _ in range(args.sequential)])
                single[loop].append(seconds / (args.sequential * args.turns) * 1000)
            for loop in LOOPS:
                concurrent[loop].append(work / await runners[loop](args.episodes))
        ms = {loop: statistics.median(v) for loop, v in single.items()}
        tps = {loop: statistics.median(v) for loop, v in concurrent.items()}
        return {
            "turns_per_episode": args.turns,
            "concurrent_episodes": args.episodes,
            "repeats": args.repeats,
            "single_ms_per_turn": ms,
            "concurrent_turns_per_s": tps,
            "single_ratio_tether_over_bare": ms["tether"] / ms["bare"],
            "single_ratio_tether_ckpt_over_bare_ckpt": ms["tether_ckpt"] / ms["bare_ckpt"],
            "single_ratio_tether_ckpt_over_bare": ms["tether_ckpt"] / ms["bare"],
            "single_target_max": 1.5,
            "concurrent_ratio_tether_over_bare": tps["tether"] / tps["bare"],
            "concurrent_ratio_tether_ckpt_over_bare_ckpt": tps["tether_ckpt"] / tps["bare_ckpt"],
            "concurrent_ratio_tether_ckpt_over_bare": tps["tether_ckpt"] / tps["bare"],
            "concurrent_target_min": 0.8,
        }

    r = asyncio.run(measure())
    if args.json:
        print(json.dumps(r))
        return

    report(r)


def report(r: dict[str, Any]) -> None:
    """Print the measured figures and the ratios against their targets."""
    sections = (
        ("single", f"single episode, {r['turns_per_episode']} turns", "single_ms_per_turn", "{:.3f} ms/turn"),
        ("concurrent", f"{r['concurrent_episodes']} concurrent episodes", "concurrent_turns_per_s", "{:.0f} turns/s"),
    )
    for kind, title, key, unit in sections:
        print(f"{title} (median of {r['repeats']}):")
        for loop in LOOPS:
            print(f"  {LABELS[loop]:32s} " + unit.format(r[key][loop]))
        if kind == "single":
            limit, suffix, rule = r["single_target_max"], "x", "<="
        else:
            limit, suffix, rule = r["concurrent_target_min"], "", ">="
        for pair, label in PAIRS.items():
            value = r[f"{kind}_ratio_{pair}"]
            ok = value <= limit if rule == "<=" else value >= limit
            target = f"target {rule} {limit}{suffix}: {'meets target' if ok else 'MISSES target'}"
            print(f"  {label:42s} {value:.2f}{suffix}  ({target})")
        print(f"  {'tether+checkpoints / bare':42s} {r[f'{kind}_ratio_tether_ckpt_over_bare']:.2f}{suffix}")


if __name__ == "__main__":
    sys.exit(main())
