"""Core types round-trip exactly through JSON."""

from __future__ import annotations

from pydantic import TypeAdapter

from tether.types import (
    Episode,
    EpisodeFinished,
    Event,
    IntermediateAnswer,
    Message,
    Reward,
    Run,
    Step,
    StepCompleted,
    Task,
    TokenDelta,
    ToolCall,
    ToolResult,
)


def _episode() -> Episode:
    call = ToolCall(name="add", arguments={"a": 1.5, "b": [1, {"x": "é"}]})
    return Episode(
        run_id="r",
        suite="calc",
        task_id="t",
        status="done",
        final_answer="3",
        rewards={"correct": 1.0, "total": 1.0},
        reward_errors={},
        metrics={"turns": 2.0},
        task=Task(id="t", suite="calc", prompt="What is 1+2? ✓", gold=3.0, metadata={"k": [1, 2]}),
        steps=[
            Step(index=0, role="prompt", text="hi", messages=[Message(role="user", content="hi")]),
            Step(
                index=1,
                role="assistant",
                text="<tool_call>…</tool_call>",
                tool_calls=[call],
                token_ids=[1, 2, 3],
                logprobs=[-0.1, -2.5e-9, -13.75],
                loss_mask=[1, 1, 0],
                prompt_token_ids=[7, 8],
            ),
            Step(
                index=2,
                role="tool",
                tool_results=[ToolResult(call_id=call.id, name="add", content="3", data={"v": 3})],
            ),
        ],
    )


def test_episode_round_trips_exactly() -> None:
    episode = _episode()
    again = Episode.model_validate_json(episode.model_dump_json())
    assert again == episode
    assert again.steps[1].logprobs == [-0.1, -2.5e-9, -13.75]


def test_every_type_round_trips() -> None:
    for obj in (
        Run(kind="eval", config={"n": 3}),
        Reward(name="x", value=None, error="boom"),
        Message(role="assistant", content="x", token_ids=[4, 5]),
    ):
        assert type(obj).model_validate_json(obj.model_dump_json()) == obj


def test_events_round_trip_through_the_union() -> None:
    adapter: TypeAdapter[Event] = TypeAdapter(Event)
    episode = _episode()
    events = [
        TokenDelta(episode_id="e", text="ab"),
        StepCompleted(episode_id="e", step=episode.steps[1]),
        IntermediateAnswer(episode_id="e", text="4", index=0, elapsed_ms=12.5),
        EpisodeFinished(episode=episode),
    ]
    for event in events:
        assert adapter.validate_json(adapter.dump_json(event)) == event


def test_reward_property() -> None:
    episode = _episode()
    assert episode.reward == 1.0
    episode.reward_errors = {"correct": "ValueError: x"}
    assert episode.reward is None
