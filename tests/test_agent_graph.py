"""The agent loop end to end with the scripted model, on every store backend's fake and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

import tether
from tether.errors import ScriptExhausted
from tether.models.scripted import ScriptedModel
from tether.store import open_store
from tether.suites.calc import CalcSuite
from tether.tools.calls import format_tool_call
from tether.types import Task


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    url = "memory://" if request.param == "memory" else f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    s = await open_store(url)
    yield s
    await s.close()


def calc_script() -> list[str]:
    return [
        "I will multiply first. " + format_tool_call("mul", {"a": 12, "b": 7}),
        format_tool_call("sub", {"a": 84, "b": 5}),
        format_tool_call("finish", {"answer": 79}),
    ]


async def test_episode_runs_tools_and_is_stored(store) -> None:  # type: ignore[no-untyped-def]
    model = ScriptedModel(calc_script())
    task = CalcSuite().task_from_prompt("What is 12*7-5?")
    async with tether.Agent(suite="calc", model=model, store=store) as agent:
        episode = await agent.run(task)
    assert episode.status == "done"
    assert episode.final_answer == "79"
    assert episode.rewards == {"correct": 1.0, "total": 1.0}
    roles = [s.role for s in episode.steps]
    assert roles == ["prompt", "assistant", "tool", "assistant", "tool", "assistant", "tool"]
    assert [s.index for s in episode.steps] == list(range(7))
    assert episode.steps[2].tool_results[0].content == "84"
    for step in episode.model_steps:
        assert step.token_ids and len(step.logprobs) == len(step.token_ids) == len(step.loss_mask)
    # the model saw the tool result of its previous call
    assert model.calls[1][-1].content == "84"
    stored = await store.get_episode(episode.id)
    assert stored == episode
    assert episode.metrics["turns"] == 3 and episode.metrics["tool_calls"] == 3


async def test_bad_calls_become_observations_not_crashes(store) -> None:  # type: ignore[no-untyped-def]
    model = ScriptedModel(
        [
            '<tool_call>{"name": "mul", "arguments": {"a": "x"}}</tool_call>',
            "<tool_call>{broken",
            format_tool_call("finish", {"answer": 4}),
        ]
    )
    async with tether.Agent(suite="calc", model=model, store=store) as agent:
        episode = await agent.run("What is 2+2?")
    assert episode.status == "done" and episode.final_answer == "4"
    errors = [r for s in episode.steps for r in s.tool_results if r.is_error]
    assert len(errors) == 2
    assert "missing argument 'b'" in errors[0].content and "not closed" in errors[1].content
    assert episode.metrics["invalid_calls"] == 2


async def test_plain_answer_ends_the_episode(store) -> None:  # type: ignore[no-untyped-def]
    async with tether.Agent(suite="calc", model=ScriptedModel(["It is 4."]), store=store) as agent:
        episode = await agent.run("What is 2+2?")
    assert episode.status == "done" and episode.final_answer == "It is 4."
    assert episode.rewards["correct"] == 1.0


async def test_budget_truncates(store) -> None:  # type: ignore[no-untyped-def]
    model = ScriptedModel([format_tool_call("add", {"a": 1, "b": 1})] * 10)
    async with tether.Agent(suite="calc", model=model, store=store, max_turns=3) as agent:
        episode = await agent.run("What is 2+2?")
    assert episode.status == "truncated"
    assert episode.metrics["turns"] == 3
    assert episode.rewards["correct"] == 0.0


async def test_model_failure_is_an_error_episode_with_traceback(store) -> None:  # type: ignore[no-untyped-def]
    model = ScriptedModel([format_tool_call("add", {"a": 1, "b": 1})])
    async with tether.Agent(suite="calc", model=model, store=store) as agent:
        episode = await agent.run("What is 2+2?")
    assert episode.status == "error"
    assert "ScriptExhausted" in (episode.error or "")
    assert episode.rewards == {}
    assert [s.role for s in episode.steps] == ["prompt", "assistant", "tool"]
    with pytest.raises(ScriptExhausted):
        await model.generate([], tether.SamplingParams())


async def test_reward_function_failure_is_recorded_as_error(store) -> None:  # type: ignore[no-untyped-def]
    suite = CalcSuite()
    task = Task(id="weird", suite="calc", prompt="What is x?", gold="not-a-number")
    async with tether.Agent(suite=suite, model=ScriptedModel(["5"]), store=store) as agent:
        episode = await agent.run(task)
    assert episode.status == "done"
    assert episode.rewards["correct"] is None and episode.rewards["total"] is None
    assert "ValueError" in episode.reward_errors["correct"]
    assert episode.reward is None


async def test_stream_yields_typed_events_in_order(store) -> None:  # type: ignore[no-untyped-def]
    async with tether.Agent(suite="calc", model=ScriptedModel(calc_script()), store=store) as agent:
        events = [e async for e in agent.stream("What is 12*7-5?")]
    types = [e.type for e in events]
    assert types[0] == "episode_started" and types[-1] == "episode_finished"
    assert types.count("step") == 7
    deltas = "".join(e.text for e in events if e.type == "token")
    assert deltas == "".join(calc_script())
    assert events[-1].episode.final_answer == "79"


async def test_rollout_runs_groups_concurrently(store) -> None:  # type: ignore[no-untyped-def]
    suite = CalcSuite()
    tasks = suite.tasks(n=4, seed=1)
    model = ScriptedModel(["7"] * 8)
    episodes = await tether.rollout(tasks, suite=suite, model=model, store=store, concurrency=3, group=2)
    assert len(episodes) == 8
    assert [e.task_id for e in episodes] == [t.id for t in tasks for _ in range(2)]
    assert len({e.run_id for e in episodes}) == 1
    listed = await store.list_episodes(run_id=episodes[0].run_id)
    assert len(listed) == 8


async def test_wall_time_budget_interrupts_a_slow_turn(store) -> None:  # type: ignore[no-untyped-def]
    model = ScriptedModel([format_tool_call("add", {"a": 1, "b": 1}), "never"], delays=[0.0, 30.0])
    async with tether.Agent(suite="calc", model=model, store=store, wall_time_s=0.5) as agent:
        episode = await agent.run("What is 2+2?")
    assert episode.status == "truncated"
    assert episode.duration_ms < 5000
    assert [s.role for s in episode.steps] == ["prompt", "assistant", "tool"]


async def test_steps_commit_with_their_checkpoints_and_checkpoints_go_when_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the checkpointer, each node's step is committed in the same transaction as the
    checkpoint written after that node; the checkpoint is there while the episode runs and
    is deleted once it ends."""
    from tether.store import sql

    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert isinstance(store, sql.SqlStore)
    batches: list[list[int]] = []
    real_resolve = sql.SqlStore._resolve

    def recording_resolve(self, batch):  # type: ignore[no-untyped-def]
        batches.append([op.kind for op in batch])  # every committed batch, inline or by the writer
        real_resolve(self, batch)

    monkeypatch.setattr(sql.SqlStore, "_resolve", recording_resolve)
    seen: list[bool] = []
    running: list[str] = []

    class Peeking(ScriptedModel):
        async def generate(self, messages, params, **kwargs):  # type: ignore[no-untyped-def]
            snapshot = await agent._graph.aget_state({"configurable": {"thread_id": running[0]}})
            seen.append(bool(snapshot.values))
            return await super().generate(messages, params, **kwargs)

    try:
        async with tether.Agent(suite="calc", model=Peeking(calc_script()), store=store) as agent:
            real_start = store.start_episode

            async def start(episode):  # type: ignore[no-untyped-def]
                running.append(episode.id)
                await real_start(episode)

            store.start_episode = start  # type: ignore[method-assign]
            batches.clear()
            episode = await agent.run("What is 12*7-5?")
        assert episode.status == "done" and len(episode.steps) == 7
        with_steps = [b for b in batches if sql._STEP in b]
        assert len(with_steps) == 7  # the prompt step, then one commit per node step
        assert with_steps[0] == [sql._STEP]  # the prompt, before the graph starts
        assert all(b.count(sql._STEP) == 1 and sql._CKPT in b for b in with_steps[1:]), batches
        assert seen == [True, True, True]  # every model turn starts from a stored checkpoint
        assert await store.get_checkpoint(episode.id, "", None) is None
        assert (await store.get_episode(episode.id)) == episode
    finally:
        await store.close()
