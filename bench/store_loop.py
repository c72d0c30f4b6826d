"""Throughput of a LangGraph tool loop with the trajectory store on, against the same loop without it.

The loop is a two-node LangGraph graph (model -> tool -> model ...) with a fake model, as in
``bench/agent_loop.py`` but without tether's agent, so the figures isolate the store. The
model node yields to the event loop once, as any real model call does. Every
variant builds the same ``Step`` objects (two per turn: the model turn with token ids /
logprobs / mask, and the tool result); with a store each one is written with ``add_step``
and its commit awaited, as the agent does, and every episode is started and finished.

Variants, all measured in the same run, as turns/s over N concurrent episodes and as a
ratio to the no-store baseline (target for SQLite with group commit: >= 0.8):

  none               no store (baseline)
  memory             InMemoryStore
  sqlite             SqlStore on a SQLite file, group commit
  sqlite-batch1      SqlStore with max_batch=1 (one commit per write: what group commit saves)
  sqlite+ckpt        SQLite store + tether's LangGraph checkpointer in the same database
                     (StoreCheckpointSaver; steps here are committed on their own, not with the checkpoint)
  none+memory-ckpt   no store + LangGraph's InMemorySaver (what checkpointing costs by itself)
  none+ckpt          no store + tether's checkpointer on a SQLite file of its own
  none+stock-ckpt    no store + LangGraph's stock AsyncSqliteSaver (for comparison)
  postgres           SqlStore on PostgreSQL (only with --pg URL: a throwaway database is created on that server)

    python bench/store_loop.py [--episodes 100] [--turns 20] [--repeats 3] [--pg postgresql://...] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import operator
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from tether.store import InMemoryStore, SqlStore, TrajectoryStore, langgraph_checkpointer
from tether.types import Episode, Message, Step, Task, ToolCall, ToolResult

PROMPT_IDS = list(range(300))


class State(TypedDict):
    messages: Annotated[list[dict[str, Any]], operator.add]
    turn: int
    done: bool
    eid: str


def build(store: TrajectoryStore | None, turns: int, checkpointer: Any = None) -> Any:
    async def model_node(state: State) -> dict[str, Any]:
        turn = state["turn"]
        await asyncio.sleep(0)  # a real model call yields to the event loop at least once
        text = f'<tool_call>{{"name": "noop", "arguments": {{"x": {turn}}}}}</tool_call>'
        ids = list(text.encode())
        step = Step(  # the agent builds its steps with or without a store
            index=2 * turn + 1,
            role="assistant",
            text=text,
            tool_calls=[ToolCall(name="noop", arguments={"x": turn})],
            token_ids=ids,
            logprobs=[-0.25] * len(ids),
            loss_mask=[1] * len(ids),
            prompt_token_ids=PROMPT_IDS,
        )
        if store is not None:
            await store.add_step(state["eid"], step)
        return {"messages": [{"role": "assistant", "content": text}], "turn": turn + 1, "done": turn + 1 >= turns}

    async def tool_node(state: State) -> dict[str, Any]:
        result = ToolResult(call_id="c", name="noop", content="ok")
        step = Step(index=2 * state["turn"], role="tool", text="ok", tool_results=[result])
        if store is not None:
            await store.add_step(state["eid"], step)
        return {"messages": [{"role": "tool", "content": "ok"}]}

    g = StateGraph(State)
    g.add_node("model", model_node)
    g.add_node("tool", tool_node)
    g.add_edge(START, "model")
    g.add_conditional_edges("model", lambda s: END if s["done"] else "tool")
    g.add_edge("tool", "model")
    return g.compile(checkpointer=checkpointer)


async def episodes(store: TrajectoryStore | None, n: int, turns: int, checkpointer: Any = None) -> tuple[float, float]:
    """(turns per wall second, turns per CPU second of this process) for ``n`` concurrent episodes."""
    graph = build(store, turns, checkpointer)
    task = Task(id="t", suite="bench", prompt="go")

    async def one(k: int) -> None:
        ep = Episode(suite="bench", task_id=task.id, task=task, run_id="bench")
        prompt = Step(index=0, role="prompt", text="go", messages=[Message(role="user", content="go")])
        if store is not None:
            await store.start_episode(ep)
            await store.add_step(ep.id, prompt)
        config = {"configurable": {"thread_id": ep.id}, "recursion_limit": 4 * turns + 10}
        state = {"messages": [{"role": "user", "content": "go"}], "turn": 0, "done": False, "eid": ep.id}
        await graph.ainvoke(state, config)
        ep.status, ep.rewards = "done", {"total": 1.0}
        if store is not None:
            await store.finish_episode(ep)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(k) for k in range(n)))
    return n * turns / (time.perf_counter() - start), n * turns / (time.process_time() - cpu)


@contextlib.asynccontextmanager
async def variant(name: str, tmp: Path, pg: str | None) -> AsyncIterator[tuple[TrajectoryStore | None, Any]]:
    db = tmp / f"{name}.db"
    if name == "none":
        yield None, None
    elif name == "memory":
        yield InMemoryStore(), None
    elif name in ("sqlite", "sqlite-batch1"):
        store = await SqlStore.open(f"sqlite:///{db}", max_batch=1 if name == "sqlite-batch1" else 1000)
        yield store, None
        await store.close()
    elif name == "sqlite+ckpt":
        store = await SqlStore.open(f"sqlite:///{db}")
        async with langgraph_checkpointer(store) as saver:
            yield store, saver
        await store.close()
    elif name == "none+memory-ckpt":
        from langgraph.checkpoint.memory import InMemorySaver

        yield None, InMemorySaver()
    elif name == "none+ckpt":
        async with langgraph_checkpointer(f"sqlite:///{db}") as saver:
            yield None, saver
    elif name == "none+stock-ckpt":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(str(tmp / "stock.ckpt.db")) as saver:
            yield None, saver
    elif name == "postgres":
        assert pg is not None
        store = await SqlStore.open(pg)
        yield store, None
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg", default=None, help="a PostgreSQL URL to include the postgres variant")
    parser.add_argument("--only", default=None, help="comma-separated variants")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names = ["none", "memory", "sqlite", "sqlite-batch1", "sqlite+ckpt", "none+memory-ckpt", "none+ckpt"]
    names.append("none+stock-ckpt")
    if args.pg:
        names.append("postgres")
    if args.only:
        names = ["none"] + [n for n in args.only.split(",") if n != "none"]

    async def measure() -> dict[str, tuple[float, float]]:
        tmp = Path(tempfile.mkdtemp(prefix="tether-store-bench-"))
        samples: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        for name in names:  # warm up: imports, migrations, compiled statement caches
            async with variant(name, tmp, args.pg) as (store, saver):
                await episodes(store, 4, 3, saver)
        for _ in range(args.repeats):  # interleaved, so load changes hit every variant alike
            for name in names:
                async with variant(name, tmp, args.pg) as (store, saver):
                    samples[name].append(await episodes(store, args.episodes, args.turns, saver))
        return {n: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for n, v in samples.items()}

    if args.pg:
        from tether.store.conformance import temporary_postgres_database

        with temporary_postgres_database(args.pg) as url:
            args.pg = url
            result = asyncio.run(measure())
    else:
        result = asyncio.run(measure())
    wall0, cpu0 = result["none"]
    ratios = {n: {"wall": w / wall0, "cpu": c / cpu0} for n, (w, c) in result.items()}
    if args.json:
        print(json.dumps({"turns_per_s": {n: w for n, (w, _) in result.items()}, "ratio_to_none": ratios}))
        return 0
    print(f"{args.episodes} concurrent episodes x {args.turns} turns (2 steps/turn), median of {args.repeats}:")
    print(f"  {'variant':16s} {'turns/s':>8s}  ratio(wall)  ratio(cpu)")
    for name, (wall, _) in result.items():
        print(f"  {name:16s} {wall:8.0f}  {ratios[name]['wall']:10.2f}  {ratios[name]['cpu']:10.2f}")
    print(
        "target: sqlite ratio >= 0.80 (ratio(cpu): turns per CPU-second of this process, steadier when busy)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
