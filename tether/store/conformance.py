"""Conformance checks every ``TrajectoryStore`` backend must pass (shipped in the package).

Each check is a plain async function taking a *store factory*: an async callable that opens
a new store on the same backing database every time it is called (two calls = two
connections to one database). Checks scope everything by fresh ids, so they can share a
database with each other and with other data. A failed check raises ``AssertionError``.

``check_kill9_durability(url)`` takes a URL instead: it runs a writer in a subprocess,
SIGKILLs it and checks that every acknowledged step is in the database.

Usage (see ``tests/test_store_conformance.py``)::

    for check in CHECKS:
        await check(factory)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import struct
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tether.errors import StoreError
from tether.store.base import TrajectoryStore
from tether.types import Episode, Message, Run, Step, Task, ToolCall, ToolResult, new_id

StoreFactory = Callable[[], Awaitable[TrajectoryStore]]
Check = Callable[[StoreFactory], Awaitable[None]]

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
UNICODE = 'naïve café ✓ 数学 🧮 \u200b «ok» \x00nul \\ "q" \n\ttab'


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def _same(got: Any, want: Any, what: str) -> None:
    if got != want:
        raise AssertionError(f"{what}:\n  got  {got!r}\n  want {want!r}")


def _bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def make_step(index: int, *, n_tokens: int = 6, policy_version: int = 0) -> Step:
    """A step that exercises every field: large ids, exact logprobs, masks, unicode, tool calls/results."""
    role = ("prompt", "assistant", "tool")[index % 3]
    call = ToolCall(id=f"call_{index}", name="calc", arguments={"expr": "1+2", "nested": {"x": [1, 2.5, None]}})
    return Step(
        index=index,
        role=role,  # type: ignore[arg-type]
        text=f"step {index}: {UNICODE}",
        messages=[
            Message(role="user", content=UNICODE),
            Message(role="assistant", content="<tool_call>", tool_calls=[call], token_ids=[1, 2, 3]),
            Message(role="tool", content="3", tool_call_id=call.id),
        ],
        tool_calls=[call],
        tool_results=[
            ToolResult(
                call_id=call.id, name="calc", content="3 ✓", data={"value": 3, "list": [1, "a"]}, duration_ms=0.25
            ),
            ToolResult(call_id="call_x", name="calc", content="bad input", is_error=True),
        ],
        token_ids=[index, 0, 2**31 + index, 151_643, 7, 2**40][:n_tokens] + list(range(max(0, n_tokens - 6))),
        logprobs=[-0.0, -1e-310, -0.1 - index / 7, -math.inf, -12.345678901234567, 5e-324][:n_tokens]
        + [-(i / 3) for i in range(max(0, n_tokens - 6))],
        loss_mask=[index % 2, 1, 0, 1, 1, 0][:n_tokens] + [1] * max(0, n_tokens - 6),
        prompt_token_ids=list(range(index, index + 17)),
        policy_version=policy_version,
        started_at=T0 + timedelta(seconds=index, microseconds=index),
        duration_ms=1.5 + index,
    )


def make_episode(*, run_id: str = "", suite: str = "conf", **fields: Any) -> Episode:
    """An episode with a task, ready for ``start_episode``."""
    task = Task(id=new_id()[:8], suite=suite, prompt=f"What is 1+2? {UNICODE}", gold={"answer": 3}, metadata={"k": [1]})
    base: dict[str, Any] = {"run_id": run_id, "suite": suite, "task_id": task.id, "task": task, "model": "scripted"}
    base.update(fields)
    return Episode(**base)


async def _open2(factory: StoreFactory) -> tuple[TrajectoryStore, TrajectoryStore]:
    return await factory(), await factory()


# ----- checks -----


async def check_runs(factory: StoreFactory) -> None:
    """create_run round-trips, is idempotent on id; list_runs is newest first, filters by kind, limits."""
    store = await factory()
    try:
        kind = "kind-" + new_id()[:8]
        runs = [
            Run(
                kind=kind,
                suite="s",
                model="m",
                config={"lr": 1e-6, "name": UNICODE, "n": [1, 2]},
                created_at=T0 + timedelta(minutes=i),
            )
            for i in range(3)
        ]
        for run in runs:
            await store.create_run(run)
        await store.create_run(runs[0].model_copy(update={"model": "other"}))  # idempotent: first write wins
        _same(await store.get_run(runs[0].id), runs[0], "get_run")
        _same(await store.get_run("missing-" + new_id()), None, "get_run of a missing id")
        _same(await store.list_runs(kind=kind), runs[::-1], "list_runs(kind) newest first")
        _same(await store.list_runs(kind=kind, limit=2), runs[::-1][:2], "list_runs(limit=2)")
        everything = await store.list_runs()
        _expect({r.id for r in runs} <= {r.id for r in everything}, "list_runs() without filters misses runs")
    finally:
        await store.close()


async def check_episode_roundtrip(factory: StoreFactory) -> None:
    """An episode with all step fields comes back equal (pydantic ==), floats bit for bit."""
    store = await factory()
    try:
        run = Run(kind="rollout")
        await store.create_run(run)
        ep = make_episode(run_id=run.id, policy_version=3, created_at=T0)
        await store.start_episode(ep)
        stored = await store.get_episode(ep.id)
        _same(stored, ep, "episode right after start_episode")
        steps = [make_step(i, n_tokens=6 + i) for i in range(4)]
        for step in steps:
            await store.add_step(ep.id, step)
        got = await store.get_episode(ep.id)
        _expect(got is not None, "get_episode returned None")
        assert got is not None
        _same(got.steps, steps, "steps")
        for g, s in zip(got.steps, steps, strict=True):
            _same(_bits(g.logprobs), _bits(s.logprobs), f"logprob bits of step {s.index}")
        _same(got, ep.model_copy(update={"steps": steps}), "episode with steps")
        no_steps = await store.get_episode(ep.id, with_steps=False)
        _same(no_steps, ep, "get_episode(with_steps=False)")
        _same(await store.get_episode("missing-" + new_id()), None, "get_episode of a missing id")
        # a step handed in out of order is still returned in index order
        ep2 = make_episode(run_id=run.id)
        await store.start_episode(ep2)
        for i in (2, 0, 1):
            await store.add_step(ep2.id, make_step(i))
        got2 = await store.get_episode(ep2.id)
        assert got2 is not None
        _same([s.index for s in got2.steps], [0, 1, 2], "step order")
        # other time zones and naive datetimes are stored as the same instant in UTC
        ep3 = make_episode(created_at=datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=5))))
        await store.start_episode(ep3)
        got3 = await store.get_episode(ep3.id)
        assert got3 is not None
        _same(got3.created_at, ep3.created_at, "created_at in another time zone")
        _same(got3.created_at.utcoffset(), timedelta(0), "created_at comes back in UTC")
    finally:
        await store.close()


async def check_list_filters(factory: StoreFactory) -> None:
    """list_episodes filters by run, suite, status, policy version, [since, until); oldest first; limit."""
    store = await factory()
    try:
        run_a, run_b = new_id(), new_id()
        suite_x, suite_y = "x-" + new_id()[:8], "y-" + new_id()[:8]
        eps: list[Episode] = []
        for i in range(8):
            ep = make_episode(
                run_id=run_a if i < 5 else run_b,
                suite=suite_x if i % 2 == 0 else suite_y,
                policy_version=i % 3,
                created_at=T0 + timedelta(seconds=10 * (7 - i)),  # written newest first
            )
            eps.append(ep)
            await store.start_episode(ep)
            await store.add_step(ep.id, make_step(0))
            if i % 4 == 0:
                await store.finish_episode(ep.model_copy(update={"status": "done", "finished_at": T0}))
        by_time = sorted(eps, key=lambda e: e.created_at)

        async def ids(**kw: Any) -> list[str]:
            return [e.id for e in await store.list_episodes(**kw)]

        _same(await ids(run_id=run_a), [e.id for e in by_time if e.run_id == run_a], "run_id filter, oldest first")
        _same(await ids(suite=suite_x), [e.id for e in by_time if e.suite == suite_x], "suite filter")
        _same(
            await ids(run_id=run_a, suite=suite_y),
            [e.id for e in by_time if e.run_id == run_a and e.suite == suite_y],
            "run_id + suite",
        )
        _same(
            await ids(run_id=run_a, status="done"),
            [e.id for e in by_time if e.run_id == run_a and e.id in {eps[0].id, eps[4].id}],
            "status filter",
        )
        _same(
            await ids(run_id=run_a, status="running"),
            [e.id for e in by_time if e.run_id == run_a and e.id not in {eps[0].id, eps[4].id}],
            "status running",
        )
        _same(
            await ids(run_id=run_b, policy_version=1),
            [e.id for e in by_time if e.run_id == run_b and e.policy_version == 1],
            "policy_version filter",
        )
        since, until = T0 + timedelta(seconds=20), T0 + timedelta(seconds=50)
        want = [e.id for e in by_time if since <= e.created_at < until]
        _same(
            await ids(suite=suite_x, since=since, until=until),
            [i for i in want if i in {e.id for e in eps if e.suite == suite_x}],
            "since/until on one suite",
        )
        _same(
            await ids(run_id=run_a, since=since, until=until),
            [i for i in want if i in {e.id for e in eps if e.run_id == run_a}],
            "since <= created_at < until",
        )
        _same(await ids(run_id=run_a, limit=2), [e.id for e in by_time if e.run_id == run_a][:2], "limit")
        _same(await ids(run_id="none-" + new_id()), [], "no match")
        listed = await store.list_episodes(run_id=run_b)
        _expect(all(e.steps == [] for e in listed), "with_steps=False must leave steps empty")
        listed = await store.list_episodes(run_id=run_b, with_steps=True)
        _expect(all(e.steps == [make_step(0)] for e in listed), "with_steps=True must return the steps")
    finally:
        await store.close()


async def check_finish_and_rewards(factory: StoreFactory) -> None:
    """finish_episode updates the row and replaces rewards; failed rewards keep their error, never 0."""
    store = await factory()
    try:
        ep = make_episode(created_at=T0)
        await store.start_episode(ep)
        await store.start_episode(ep.model_copy(update={"model": "changed"}))  # idempotent on id
        steps = [make_step(i) for i in range(3)]
        for s in steps:
            await store.add_step(ep.id, s)
        finished = ep.model_copy(
            update={
                "status": "error",
                "final_answer": f"3 {UNICODE}",
                "rewards": {"correct": 1.0, "format": None, "neg": -0.5, "total": None},
                "reward_errors": {"format": "ValueError: bad\nTraceback ...", "only_error": "KeyError: 'x'"},
                "metrics": {"turns": 3.0, "tokens": 120.0, "nan": math.nan, "inf": math.inf},
                "error": f'Traceback (most recent call last):\n  File "x.py"\nRuntimeError: {UNICODE}',
                "finished_at": T0 + timedelta(seconds=9),
                "duration_ms": 9000.125,
            }
        )
        await store.finish_episode(finished)
        got = await store.get_episode(ep.id)
        assert got is not None
        _expect(math.isnan(got.metrics.pop("nan")), "NaN metric must survive")
        want = finished.model_copy(update={"steps": steps}, deep=True)
        want.metrics.pop("nan")
        _same(got, want, "finished episode")
        _same(got.reward, None, "reward with errors")
        # re-scoring replaces every reward
        rescored = finished.model_copy(update={"status": "done", "rewards": {"total": 0.75}, "reward_errors": {}})
        await store.finish_episode(rescored)
        got = await store.get_episode(ep.id, with_steps=False)
        assert got is not None
        _same((got.rewards, got.reward_errors, got.status), ({"total": 0.75}, {}, "done"), "rewards after re-finish")
        # finishing an episode that was never started inserts it
        orphan = make_episode(status="interrupted", rewards={"total": 0.0}, created_at=T0)
        await store.finish_episode(orphan)
        _same(await store.get_episode(orphan.id), orphan, "finish of an unknown episode")
    finally:
        await store.close()


async def check_delete_steps_from(factory: StoreFactory) -> None:
    """delete_steps_from drops the steps from an index on (resume), and their indexes can be written again."""
    store = await factory()
    try:
        ep, other = make_episode(), make_episode()
        for e in (ep, other):
            await store.start_episode(e)
            for i in range(5):
                await store.add_step(e.id, make_step(i))
        await store.delete_steps_from(ep.id, 3)
        got = await store.get_episode(ep.id)
        assert got is not None
        _same([s.index for s in got.steps], [0, 1, 2], "steps after delete_steps_from(3)")
        await store.add_step(ep.id, make_step(3, n_tokens=2))
        got = await store.get_episode(ep.id)
        assert got is not None
        _same(got.steps[-1], make_step(3, n_tokens=2), "a rewritten step")
        untouched = await store.get_episode(other.id)
        assert untouched is not None
        _same(len(untouched.steps), 5, "steps of another episode")
    finally:
        await store.close()


async def check_copies(factory: StoreFactory) -> None:
    """Mutating what was written, or what a read returned, never changes what is stored."""
    store = await factory()
    try:
        ep = make_episode()
        await store.start_episode(ep)
        step = make_step(1)
        await store.add_step(ep.id, step)
        step.token_ids.append(99)
        step.tool_calls[0].arguments["expr"] = "changed"
        assert ep.task is not None
        ep.task.metadata["k"].append(2)
        got = await store.get_episode(ep.id)
        assert got is not None and got.task is not None
        _same(got.steps, [make_step(1)], "steps after mutating the written step")
        _same(got.task.metadata, {"k": [1]}, "task after mutating the written episode")
        got.steps[0].logprobs[0] = 1.0
        got.rewards["x"] = 1.0
        again = await store.get_episode(ep.id)
        _same(again, got.model_copy(update={"steps": [make_step(1)], "rewards": {}}), "after mutating a read")
    finally:
        await store.close()


async def check_metrics(factory: StoreFactory) -> None:
    """add_metrics/get_metrics: ordered by step, same-step rows merged, runs kept apart."""
    store = await factory()
    try:
        run, other = new_id(), new_id()
        await store.add_metrics(run, 2, {"loss": 0.5, "kl": 0.01})
        await store.add_metrics(run, 1, {"loss": 0.75})
        await store.add_metrics(run, 2, {"reward": 0.25, "loss": 0.4})
        await store.add_metrics(other, 1, {"loss": 9.0})
        _same(
            await store.get_metrics(run),
            [{"step": 1, "loss": 0.75}, {"step": 2, "loss": 0.4, "kl": 0.01, "reward": 0.25}],
            "metrics",
        )
        _same(await store.get_metrics("none-" + new_id()), [], "metrics of an unknown run")
    finally:
        await store.close()


async def check_step_errors(factory: StoreFactory) -> None:
    """A step for an unknown episode or a taken index fails with StoreError; other writes are unaffected."""
    store = await factory()
    try:
        ep = make_episode()
        await store.start_episode(ep)
        await store.add_step(ep.id, make_step(0))
        results = await asyncio.gather(
            store.add_step("missing-" + new_id(), make_step(0)),
            store.add_step(ep.id, make_step(0)),  # taken
            store.add_step(ep.id, make_step(1)),
            store.add_step(ep.id, make_step(2)),
            return_exceptions=True,
        )
        _expect(isinstance(results[0], StoreError), f"unknown episode must raise StoreError, got {results[0]!r}")
        _expect(isinstance(results[1], StoreError), f"a taken index must raise StoreError, got {results[1]!r}")
        _same(results[2:], [None, None], "good steps written beside bad ones")
        got = await store.get_episode(ep.id)
        assert got is not None
        _same(got.steps, [make_step(i) for i in range(3)], "steps after errors")
    finally:
        await store.close()


async def check_concurrency(factory: StoreFactory, *, n_episodes: int = 50, n_steps: int = 12) -> None:
    """50 episodes writing concurrently: every step present, in order, exact."""
    store = await factory()
    try:
        run = new_id()
        eps = [make_episode(run_id=run, created_at=T0 + timedelta(microseconds=i)) for i in range(n_episodes)]

        async def one(k: int, ep: Episode) -> None:
            await store.start_episode(ep)
            for i in range(n_steps):
                await store.add_step(ep.id, make_step(i, n_tokens=6 + (k + i) % 9))
                if (k + i) % 3 == 0:
                    await asyncio.sleep(0)
            await store.finish_episode(ep.model_copy(update={"status": "done", "rewards": {"total": float(k)}}))

        await asyncio.gather(*(one(k, ep) for k, ep in enumerate(eps)))
        listed = await store.list_episodes(run_id=run, with_steps=True)
        _same([e.id for e in listed], [e.id for e in eps], "episodes after concurrent writes")
        for k, e in enumerate(listed):
            _same(e.steps, [make_step(i, n_tokens=6 + (k + i) % 9) for i in range(n_steps)], f"steps of episode {k}")
            _same((e.status, e.rewards), ("done", {"total": float(k)}), f"finish of episode {k}")
    finally:
        await store.close()


async def check_visible_to_second_store(factory: StoreFactory) -> None:
    """Once add_step returns, a second store on the same database sees the step (and the finish)."""
    first, second = await _open2(factory)
    try:
        ep = make_episode()
        await first.start_episode(ep)
        for i in range(3):
            await first.add_step(ep.id, make_step(i))
            got = await second.get_episode(ep.id)
            _expect(got is not None, "the second store does not see the episode")
            assert got is not None
            _same([s.index for s in got.steps], list(range(i + 1)), f"second store's steps after step {i}")
        await first.finish_episode(ep.model_copy(update={"status": "done"}))
        got = await second.get_episode(ep.id, with_steps=False)
        assert got is not None
        _same(got.status, "done", "second store sees the finish")
    finally:
        await first.close()
        await second.close()


async def check_closed_store(factory: StoreFactory) -> None:
    """A closed store raises StoreError (never hangs); close is idempotent."""
    store = await factory()
    ep = make_episode()
    await store.start_episode(ep)
    await store.close()
    await store.close()
    for call in (store.add_step(ep.id, make_step(0)), store.get_episode(ep.id)):
        try:
            await asyncio.wait_for(call, 10)
        except StoreError:
            continue
        raise AssertionError("a closed store must raise StoreError")


async def check_deferred_steps(factory: StoreFactory) -> None:
    """``add_step_deferred``: the future resolves once the step is committed (with a later write
    that waits, or on its own soon after), a second store then sees it, and a bad step fails
    its own future with ``StoreError`` while the others commit."""
    first, second = await _open2(factory)
    try:
        ep = make_episode()
        await first.start_episode(ep)
        alone = first.add_step_deferred(ep.id, make_step(0))
        await asyncio.wait_for(alone, 10)  # nothing else is written: it commits on its own
        riding = first.add_step_deferred(ep.id, make_step(1))
        duplicate = first.add_step_deferred(ep.id, make_step(1))
        await first.add_step(ep.id, make_step(2))  # a write that waits takes the deferred ones along
        await asyncio.wait_for(riding, 10)
        try:
            await asyncio.wait_for(duplicate, 10)
        except StoreError:
            pass
        else:
            raise AssertionError("a deferred step with a taken index must fail with StoreError")
        got = await second.get_episode(ep.id)
        _same([s.index for s in got.steps] if got else None, [0, 1, 2], "deferred steps seen by a second store")
    finally:
        await first.close()
        await second.close()


async def check_langgraph_checkpoints(factory: StoreFactory) -> None:
    """``StoreCheckpointSaver`` on the store: a second store resumes an interrupted graph; the
    store keeps the newest checkpoint of a thread with its parent and its pending writes (the
    first regular write of a task slot wins, special ones are replaced), drops those writes
    when a newer checkpoint arrives, and deletes a thread."""
    from typing import TypedDict

    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.constants import ERROR
    from langgraph.graph import END, START, StateGraph

    from tether.store.saver import StoreCheckpointSaver

    class State(TypedDict):
        log: list[str]

    def graph() -> Any:
        g = StateGraph(State)
        g.add_node("first", lambda s: {"log": [*s["log"], "first"]})
        g.add_node("second", lambda s: {"log": [*s["log"], "second"]})
        g.add_edge(START, "first")
        g.add_edge("first", "second")
        g.add_edge("second", END)
        return g

    first, second = await _open2(factory)
    try:
        config: Any = {"configurable": {"thread_id": new_id()}}
        saver = StoreCheckpointSaver(first)  # type: ignore[arg-type]
        g1 = graph().compile(checkpointer=saver, interrupt_before=["second"])
        _same((await g1.ainvoke({"log": []}, config))["log"], ["first"], "state at the interrupt")
        g2 = graph().compile(checkpointer=StoreCheckpointSaver(second), interrupt_before=["second"])  # type: ignore[arg-type]
        state = await g2.aget_state(config)
        _same(state.next, ("second",), "the second store's next node")
        _same((await g2.ainvoke(None, config))["log"], ["first", "second"], "resumed state")
        _same(len([s async for s in g2.aget_state_history(config)]), 1, "history holds the newest checkpoint")

        # the saver API directly
        tid = new_id()
        base: Any = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
        configs = []
        parent = base
        for step in range(3):
            cp = empty_checkpoint()
            cp["channel_values"] = {"x": step}
            parent = await saver.aput(parent, cp, {"source": "loop", "step": step}, {})
            configs.append(parent)
        await saver.aput_writes(configs[-1], [("a", 1), ("b", 2)], "task1", "p1")
        await saver.aput_writes(configs[-1], [("a", 99)], "task1", "p1")  # same (task, idx): the first write stays
        await saver.aput_writes(configs[-1], [(ERROR, "boom")], "task0", "p0")
        await saver.aput_writes(configs[-1], [(ERROR, "bang")], "task0", "p0")  # special channel: replaced
        latest = await StoreCheckpointSaver(second).aget_tuple(base)  # type: ignore[arg-type]
        _expect(latest is not None, "the newest checkpoint is found")
        assert latest is not None
        _same(latest.config, configs[-1], "config of the newest checkpoint")
        _same(latest.checkpoint["channel_values"], {"x": 2}, "newest checkpoint's values")
        _same(latest.parent_config, configs[1], "parent of the newest checkpoint")
        _same(latest.metadata["step"], 2, "checkpoint metadata")
        _same(
            latest.pending_writes,
            [("task0", ERROR, "bang"), ("task1", "a", 1), ("task1", "b", 2)],
            "pending writes in task order",
        )
        _same(await saver.aget_tuple(configs[1]), None, "an older checkpoint is not kept")
        same_id = await saver.aget_tuple(configs[-1])
        _same(same_id.config if same_id else None, configs[-1], "the newest checkpoint by its id")
        _same([t.config async for t in saver.alist(base)], [configs[-1]], "alist: the newest only")
        _same([t.config async for t in saver.alist(base, before=configs[-1])], [], "alist before the newest")
        _same([t.config async for t in saver.alist(base, filter={"step": 2})], [configs[-1]], "alist filter")
        _same([t.config async for t in saver.alist(base, filter={"step": 0})], [], "alist filter, no match")
        newer = await saver.aput(configs[-1], empty_checkpoint(), {"source": "loop", "step": 3}, {})
        after = await saver.aget_tuple(base)
        _same(
            (after.config, after.pending_writes) if after else None, (newer, []), "a newer checkpoint drops old writes"
        )
        # puts racing into one commit: writes for the replaced checkpoint go, writes for the new one stay
        cp5 = empty_checkpoint()
        cfg5: Any = {"configurable": {"thread_id": tid, "checkpoint_ns": "", "checkpoint_id": cp5["id"]}}
        await asyncio.gather(
            saver.aput_writes(newer, [("c", 3)], "task2", "p2"),
            saver.aput(newer, cp5, {"source": "loop", "step": 4}, {}),
            saver.aput_writes(cfg5, [("d", 4)], "task3", "p3"),
        )
        after = await saver.aget_tuple(base)
        _same((after.config, after.pending_writes) if after else None, (cfg5, [("task3", "d", 4)]), "racing puts")
        await saver.adelete_thread(tid)
        _same(await saver.aget_tuple(base), None, "a deleted thread has no checkpoint")
        _expect(await saver.aget_tuple(config) is not None, "deleting one thread keeps the others")
    finally:
        await first.close()
        await second.close()


CHECKS: list[Check] = [
    check_runs,
    check_episode_roundtrip,
    check_list_filters,
    check_finish_and_rewards,
    check_delete_steps_from,
    check_copies,
    check_metrics,
    check_step_errors,
    check_concurrency,
    check_visible_to_second_store,
    check_closed_store,
    check_deferred_steps,
    check_langgraph_checkpoints,
]


async def run_all(factory: StoreFactory) -> None:
    """Run every factory-based check in turn (raises on the first failure)."""
    for check in CHECKS:
        await check(factory)


@contextlib.contextmanager
def temporary_postgres_database(server_url: str) -> Iterator[str]:
    """Create a fresh database on the server of ``server_url``, yield its asyncpg URL, drop it afterwards.

    Raises ``StoreError`` when no server answers (callers skip on that).
    """
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"tether_store_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"No PostgreSQL server answers at {server.render_as_string()}: {reason}.") from exc
    try:
        yield server.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


# ----- durability after kill -9 -----

KILL_EPISODE_RUN = "kill9"


async def _writer_main(url: str, episode_id: str) -> None:
    from tether.store import open_store

    store = await open_store(url)
    await store.start_episode(Episode(id=episode_id, run_id=KILL_EPISODE_RUN, created_at=T0))
    print("started", flush=True)
    i = 0
    while True:  # until killed
        await store.add_step(episode_id, make_step(i, n_tokens=64))
        print(i, flush=True)  # acknowledged: add_step returned
        i += 1


async def check_kill9_durability(url: str, *, min_acks: int = 40) -> None:
    """A subprocess writes steps and is SIGKILLed; every step it saw acknowledged must be stored."""
    episode_id = new_id()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tether.store.conformance",
        url,
        episode_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    acked = -1
    try:
        assert proc.stdout is not None
        started = await asyncio.wait_for(proc.stdout.readline(), 60)
        if started.strip() != b"started":
            err = (await proc.stderr.read()).decode() if proc.stderr else ""
            raise AssertionError(f"the writer subprocess failed to start: {started!r} {err[-2000:]}")
        while acked < min_acks:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            _expect(bool(line), "the writer subprocess exited early")
            acked = int(line)
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    from tether.store import open_store

    store = await open_store(url)
    try:
        got = await store.get_episode(episode_id)
        _expect(got is not None, "the killed writer's episode is missing")
        assert got is not None
        n = len(got.steps)
        _expect(n >= acked + 1, f"only {n} steps survived but {acked + 1} were acknowledged")
        _same(got.steps, [make_step(i, n_tokens=64) for i in range(n)], "steps after kill -9")
    finally:
        await store.close()


if __name__ == "__main__":  # the writer subprocess of check_kill9_durability
    asyncio.run(_writer_main(sys.argv[1], sys.argv[2]))
