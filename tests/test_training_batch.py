"""Batches from stored episodes: token sequences, loss masks, groups, exclusions."""

from __future__ import annotations

from tether.api.agent import rollout
from tether.models.scripted import ScriptedModel
from tether.store import InMemoryStore
from tether.tools.calls import format_tool_call
from tether.training.batch import build_batch, collate, episode_sequences, micro_batches, select_episodes
from tether.types import Episode, Message, Step, Task, ToolResult


def _turn(index: int, prompt: list[int], ids: list[int], lps: list[float], mask: list[int] | None = None) -> Step:
    return Step(
        index=index,
        role="assistant",
        token_ids=ids,
        logprobs=lps,
        loss_mask=mask if mask is not None else [1] * len(ids),
        prompt_token_ids=prompt,
    )


def _episode(run: str = "r", task: str = "t", reward: float = 1.0, **kw: object) -> Episode:
    p0 = [1, 5, 6, 7]
    t0 = [10, 11, 2]
    gap = [8, 9, 1]
    p1 = p0 + t0 + gap
    t1 = [12, 2]
    steps = [
        Step(index=0, role="prompt", messages=[Message(role="user", content="q")]),
        _turn(1, p0, t0, [-0.1, -0.2, -0.3], [1, 1, 0]),
        Step(index=2, role="tool", tool_results=[ToolResult(call_id="c", name="add", content="5")]),
        _turn(3, p1, t1, [-0.4, -0.5]),
    ]
    return Episode(run_id=run, task_id=task, rewards={"total": reward}, steps=steps, **kw)  # type: ignore[arg-type]


def test_merged_sequence_masks_prompt_tool_and_forced_tokens() -> None:
    seqs, merged, trunc = episode_sequences(_episode())
    assert merged and trunc == 0 and len(seqs) == 1
    s = seqs[0]
    assert s.input_ids == [1, 5, 6, 7, 10, 11, 2, 8, 9, 1, 12, 2]
    assert s.loss_mask == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1]
    assert s.old_logprobs == [0, 0, 0, 0, -0.1, -0.2, 0, 0, 0, 0, -0.4, -0.5]


def test_inconsistent_prompts_fall_back_to_one_sequence_per_turn() -> None:
    ep = _episode()
    ep.steps[3].prompt_token_ids = [1, 99, 12]  # a server that re-rendered the chat
    seqs, merged, _ = episode_sequences(ep)
    assert not merged and len(seqs) == 2
    assert seqs[1].input_ids == [1, 99, 12, 12, 2]
    assert seqs[1].loss_mask == [0, 0, 0, 1, 1]


def test_groups_and_exclusions_are_counted() -> None:
    eps = [
        _episode(task="a", reward=1.0),
        _episode(task="a", reward=0.0),
        _episode(task="b", reward=0.5),
        _episode(task="b", reward=0.0, reward_errors={"correct": "ValueError: boom"}),
        Episode(run_id="r", task_id="c", rewards={"total": 1.0}, steps=[Step(index=1, role="assistant", text="x")]),
        Episode(run_id="r", task_id="d", rewards={}, steps=_episode().steps),
    ]
    batch = build_batch(eps, max_len=8)
    assert [s.group for s in batch.samples] == ["r/a", "r/a", "r/b"]
    assert batch.group_ids().tolist() == [0, 0, 1]
    assert batch.rewards().tolist() == [1.0, 0.0, 0.5]
    st = batch.stats
    assert (st.episodes_in, st.samples, st.excluded_reward_error, st.excluded_no_tokens, st.excluded_no_reward) == (
        6,
        3,
        1,
        1,
        1,
    )
    assert st.truncated_sequences == 3 and all(len(s.input_ids) == 8 for s in batch.sequences)


def test_collate_pads_and_never_trains_on_padding() -> None:
    seqs, _, _ = episode_sequences(_episode())
    short = build_batch([_episode()]).sequences[0]
    short.input_ids, short.loss_mask, short.old_logprobs = [3, 4, 5], [0, 1, 1], [0.0, -1.0, -2.0]
    tb = collate([seqs[0], short], pad_id=2)
    assert tb.input_ids.shape == (2, 12)
    assert tb.input_ids[1].tolist() == [3, 4, 5] + [2] * 9
    assert tb.loss_mask[1].tolist() == [0, 1, 1] + [0] * 9
    assert tb.attention_mask[1].sum() == 3
    mbs = micro_batches([seqs[0], short, seqs[0]], 2)
    assert [len(m) for m in mbs] == [2, 1] and mbs[0][0] is short


async def test_stored_episode_with_tool_outputs_mask_is_zero_exactly_on_prompt_and_tool_tokens() -> None:
    """A real agent episode (scripted model, calc tools) stored in the store, then batched."""
    store = InMemoryStore()
    outputs = [
        format_tool_call("add", {"a": 2, "b": 3}),
        format_tool_call("finish", {"answer": 5}),
    ]
    model = ScriptedModel(outputs)
    task = Task(id="t1", suite="calc", prompt="What is 2+3?", gold=5.0)
    [ep] = await rollout([task], suite="calc", model=model, store=store, concurrency=1)
    assert ep.status == "done", ep.error
    stored = await select_episodes(store, run_id=ep.run_id)
    assert [e.id for e in stored] == [ep.id]
    batch = build_batch(stored)
    assert batch.stats.merged_episodes == 1
    [seq] = batch.sequences
    turns = stored[0].model_steps
    prompt_len = len(turns[0].prompt_token_ids)
    # sampled tokens are exactly the scripted outputs; everything else (prompt, tool results) is masked out
    sampled = [t for t, m in zip(seq.input_ids, seq.loss_mask, strict=True) if m]
    assert bytes(sampled).decode() == outputs[0] + outputs[1]
    assert seq.loss_mask[:prompt_len] == [0] * prompt_len
    gap_start = prompt_len + len(turns[0].token_ids)
    gap_end = len(turns[1].prompt_token_ids)
    assert gap_end > gap_start
    assert seq.loss_mask[gap_start:gap_end] == [0] * (gap_end - gap_start)
    tool_text = bytes(seq.input_ids[gap_start:gap_end]).decode()
    assert "5" in tool_text
    tool_step = next(s for s in stored[0].steps if s.role == "tool")
    assert tool_step.tool_results[0].content in tool_text
    assert seq.loss_mask[gap_end:] == [1] * len(turns[1].token_ids)
