"""export_run: JSONL and Parquet files read back exactly; failures leave nothing half-written."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tether.errors import UserError
from tether.store import InMemoryStore, SqlStore, TrajectoryStore
from tether.store.conformance import make_episode, make_step
from tether.store.export import episodes_path, export_run, load_jsonl
from tether.types import Episode, Run


async def _fill(store: TrajectoryStore) -> tuple[Run, list[Episode]]:
    run = Run(kind="eval", suite="calc")
    await store.create_run(run)
    other = make_episode(run_id="another-run")
    await store.start_episode(other)
    eps = []
    for k in range(3):
        ep = make_episode(run_id=run.id, policy_version=k)
        await store.start_episode(ep)
        for i in range(k):  # episode 0 has no steps
            await store.add_step(ep.id, make_step(i, n_tokens=8))
        await store.finish_episode(
            ep.model_copy(
                update={
                    "status": "done",
                    "rewards": {"correct": float(k), "format": None, "total": None},
                    "reward_errors": {"format": "ValueError: no"},
                    "metrics": {"turns": float(k), "nan": math.nan},
                }
            )
        )
        eps.append(await store.get_episode(ep.id))
    return run, eps  # type: ignore[return-value]


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    s: TrajectoryStore = (
        InMemoryStore() if request.param == "memory" else await SqlStore.open(f"sqlite:///{tmp_path / 'e.db'}")
    )
    yield s
    await s.close()


def _comparable(ep: Episode) -> Episode:
    metrics = {k: v for k, v in ep.metrics.items() if not math.isnan(v)}
    return ep.model_copy(update={"metrics": metrics})


async def test_jsonl_round_trip(store: TrajectoryStore, tmp_path: Path) -> None:
    run, eps = await _fill(store)
    out = tmp_path / "run.jsonl"
    assert await export_run(store, run.id, out) == 3
    back = load_jsonl(out)
    assert [_comparable(e) for e in back] == [_comparable(e) for e in eps]
    assert all(math.isnan(e.metrics["nan"]) for e in back)
    assert back[1].steps[0].logprobs[3] == -math.inf  # non-finite floats survive
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3


async def test_parquet_layout(store: TrajectoryStore, tmp_path: Path) -> None:
    run, eps = await _fill(store)
    out = tmp_path / "run.parquet"
    assert await export_run(store, run.id, out, fmt="parquet") == 3
    steps = pq.read_table(out).to_pylist()
    all_steps = [(e, s) for e in eps for s in e.steps]
    assert len(steps) == len(all_steps) == 3
    for row, (ep, step) in zip(steps, all_steps, strict=True):
        assert (row["episode_id"], row["step_index"], row["run_id"]) == (ep.id, step.index, run.id)
        assert row["token_ids"] == step.token_ids and row["loss_mask"] == step.loss_mask
        assert [struct.pack("<d", x) for x in row["logprobs"]] == [struct.pack("<d", x) for x in step.logprobs]
        assert row["prompt_token_ids"] == step.prompt_token_ids
        assert row["text"] == step.text and row["started_at"] == step.started_at
        assert row["episode_policy_version"] == ep.policy_version and row["status"] == "done"
    episodes = pq.read_table(episodes_path(out)).to_pylist()
    assert episodes_path(out).name == "run.episodes.parquet"
    assert [r["episode_id"] for r in episodes] == [e.id for e in eps]  # the step-less episode too
    assert [r["n_steps"] for r in episodes] == [0, 1, 2]
    assert dict(episodes[2]["rewards"]) == {"correct": 2.0, "format": None, "total": None}
    assert dict(episodes[2]["reward_errors"]) == {"format": "ValueError: no"}
    assert episodes[1]["reward"] is None  # a failed reward is never 0


async def test_export_errors_leave_nothing(store: TrajectoryStore, tmp_path: Path) -> None:
    run, _ = await _fill(store)
    with pytest.raises(UserError, match="no run"):
        await export_run(store, "missing", tmp_path / "x.jsonl")
    with pytest.raises(UserError, match="format"):
        await export_run(store, run.id, tmp_path / "x.csv", fmt="csv")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="does not exist"):
        await export_run(store, run.id, tmp_path / "nodir" / "x.jsonl")

    class Failing:
        """The store breaks after the first episode."""

        url = store.url
        calls = 0

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(store, name)

        async def get_episode(self, episode_id: str, *, with_steps: bool = True) -> Episode | None:
            Failing.calls += 1
            if Failing.calls > 1:
                raise RuntimeError("disk on fire")
            return await store.get_episode(episode_id, with_steps=with_steps)

    old = tmp_path / "keep.parquet"
    old.write_text("previous export")
    for fmt, target in (("jsonl", tmp_path / "new.jsonl"), ("parquet", old)):
        Failing.calls = 0
        with pytest.raises(RuntimeError):
            await export_run(Failing(), run.id, target, fmt=fmt)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("e.db")) == ["keep.parquet"]
    assert old.read_text() == "previous export"
