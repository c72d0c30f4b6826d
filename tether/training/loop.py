"""The online RL loop: sample tasks, roll out groups, store, update, publish, evaluate.

Each step of ``OnlineLoop.run``:

1. draw ``batch`` training tasks (deterministic per seed and step);
2. run each ``group`` times with the current policy, concurrently, through
   ``tether.rollout`` — every episode is stored under the training run with the policy
   version that sampled it;
3. build the token batch from the returned episodes and take one trainer step;
4. publish the new weights to the rollout model (in-process for ``local``, through
   ``publish_weights`` for vLLM) as policy version ``step``;
5. store the step's metrics (``store.add_metrics``), checkpoint, and every ``eval_every``
   steps evaluate greedily on held-out tasks (``eval_reward``).

``stop()`` (Ctrl-C in the CLI) ends the loop cleanly after the current step. A run is
resumed from its latest checkpoint with ``resume=RUN_ID``. ``train_offline`` trains on
episodes already in the store instead of sampling new ones.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tether.config import data_dir
from tether.errors import UserError
from tether.models.base import ChatModel
from tether.store.base import TrajectoryStore
from tether.suites import Suite, get_suite
from tether.training.batch import build_batch, group_key, select_episodes
from tether.training.publish import PolicyPublisher, publisher_for
from tether.training.trainer import Trainer, TrainerConfig
from tether.types import Episode, Run, SamplingParams, Task

LATEST = "latest"


@dataclass
class LoopConfig:
    """The rollout side of a training run (the update side is ``TrainerConfig``)."""

    suite: str = "format"
    steps: int = 10
    group: int = 4
    batch: int = 4
    concurrency: int = 32
    temperature: float = 1.0
    max_tokens: int = 64
    max_turns: int = 2
    train_tasks: int = 1000
    eval_every: int = 0
    eval_tasks: int = 32
    keep_checkpoints: int = 2
    save_every: int = 1
    seed: int = 0
    suite_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("steps", "group", "batch", "concurrency"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1.")


def checkpoint_root(run_id: str) -> Path:
    """Where a training run keeps its checkpoints."""
    return data_dir() / "checkpoints" / run_id


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint folder under ``root`` (None if there is none)."""
    marker = root / LATEST
    if marker.is_file():
        path = root / marker.read_text().strip()
        if path.is_dir():
            return path
    return None


def _save(trainer: Trainer, root: Path, keep: int, extra: dict[str, Any]) -> Path:
    path = trainer.save_checkpoint(root / f"step-{trainer.step:06d}", extra=extra)
    (root / (LATEST + ".tmp")).write_text(path.name)
    (root / (LATEST + ".tmp")).replace(root / LATEST)
    old = sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
    for p in old[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    return path


def sample_tasks(pool: Sequence[Task], n: int, seed: int, step: int) -> list[Task]:
    """``n`` distinct tasks of ``pool`` for ``step`` (deterministic)."""
    rng = random.Random(f"tasks:{seed}:{step}")
    return rng.sample(list(pool), min(n, len(pool)))


def rollout_metrics(episodes: list[Episode], prefix: str = "rollout/") -> dict[str, float]:
    """Status counts, turns and new tokens of a set of episodes."""
    status = Counter(e.status for e in episodes)
    n = max(len(episodes), 1)
    out = {f"{prefix}{k}": float(v) for k, v in status.items()}
    out[f"{prefix}episodes"] = float(len(episodes))
    out[f"{prefix}turns"] = sum(e.metrics.get("turns", 0.0) for e in episodes) / n
    out[f"{prefix}new_tokens"] = sum(e.metrics.get("new_tokens", 0.0) for e in episodes) / n
    return out


def mean_reward(episodes: list[Episode]) -> float:
    """Mean total reward (an episode with an error or no reward counts 0)."""
    return sum((e.reward or 0.0) for e in episodes) / max(len(episodes), 1)


ProgressFn = Callable[[int, dict[str, float]], None]


class OnlineLoop:
    """The online training loop of one run (see module doc).

    Args:
        model: the rollout ``ChatModel``; a ``LocalModel`` is trained in place (its
            ``hf_model`` is the trainer's module).
        store: where episodes and metrics go.
        loop: rollout settings; ``trainer``: update settings.
        run: the run to continue (``resume``) or None for a new one.
        publisher: overrides the publisher picked for ``model``.
        trainer_model: the module to train when ``model`` has no ``hf_model`` (vLLM).
        pad_id: padding id when ``model`` has no tokenizer.
    """

    def __init__(
        self,
        model: ChatModel,
        store: TrajectoryStore,
        loop: LoopConfig,
        trainer: TrainerConfig,
        *,
        run: Run | None = None,
        publisher: PolicyPublisher | None = None,
        trainer_model: Any = None,
        pad_id: int | None = None,
        suite: Suite | None = None,
    ) -> None:
        self.model = model
        self.store = store
        self.cfg = loop
        if trainer.temperature != loop.temperature and loop.temperature > 0:
            trainer.temperature = loop.temperature  # logprobs must match the sampling distribution
        self.tcfg = trainer
        self.suite = suite or get_suite(loop.suite, **loop.suite_options)
        module = trainer_model if trainer_model is not None else getattr(model, "hf_model", None)
        if module is None:
            raise UserError(f"Model {model.name!r} has no in-process weights; pass the module to train.")
        if pad_id is None:
            pad_id = int(getattr(model, "pad_id", 0) or 0)
        self.run = run or Run(
            kind="train",
            suite=self.suite.name,
            model=model.name,
            config={"loop": asdict(loop), "trainer": trainer.to_dict()},
        )
        self.root = checkpoint_root(self.run.id)
        self.trainer = Trainer(module, trainer, pad_id=pad_id)
        self.publisher = publisher or publisher_for(model, self.root / "published")
        self.train_pool = self.suite.tasks(n=loop.train_tasks, seed=loop.seed, split="train")
        self.eval_pool = self.suite.tasks(n=loop.eval_tasks, seed=loop.seed, split="test")
        self._stop = False
        self.history: list[dict[str, float]] = []

    def stop(self) -> None:
        """Finish the current step, then stop."""
        self._stop = True

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was requested."""
        return self._stop

    async def resume(self) -> int:
        """Load the run's latest checkpoint and publish it; returns the step it resumes after."""
        ckpt = latest_checkpoint(self.root)
        if ckpt is None:
            return 0
        await asyncio.to_thread(self.trainer.load_checkpoint, ckpt)
        await self.publisher.publish(self.trainer, self.trainer.step)
        return self.trainer.step

    def _sampling(self, temperature: float) -> SamplingParams:
        return SamplingParams(temperature=temperature, max_tokens=self.cfg.max_tokens)

    async def rollout(self, tasks: Sequence[Task], group: int, temperature: float, run: Run) -> list[Episode]:
        """Run ``tasks`` ``group`` times each with the current policy; episodes are stored."""
        from tether.api.agent import rollout

        return await rollout(
            list(tasks),
            suite=self.suite,
            model=self.model,
            store=self.store,
            concurrency=self.cfg.concurrency,
            group=group,
            run=run,
            sampling=self._sampling(temperature),
            max_turns=self.cfg.max_turns,
            checkpoint=False,
        )

    async def evaluate(self, tasks: Sequence[Task] | None = None) -> list[Episode]:
        """Greedy episodes on the held-out tasks (stored under an ``eval`` run)."""
        run = Run(
            kind="eval",
            suite=self.suite.name,
            model=self.model.name,
            config={"train_run": self.run.id, "step": self.trainer.step},
        )
        return await self.rollout(tasks if tasks is not None else self.eval_pool, 1, 0.0, run)

    async def step(self) -> dict[str, float]:
        """One training step (rollout, update, publish, metrics, checkpoint)."""
        n = self.trainer.step + 1
        tasks = sample_tasks(self.train_pool, self.cfg.batch, self.cfg.seed, n)
        t0 = time.perf_counter()
        episodes = await self.rollout(tasks, self.cfg.group, self.cfg.temperature, self.run)
        t1 = time.perf_counter()
        batch = build_batch(episodes)
        lock = getattr(self.model, "model_lock", None)
        if lock is not None:
            await asyncio.to_thread(lock.acquire)
        try:
            metrics = await asyncio.to_thread(self.trainer.train_step, batch)
        finally:
            if lock is not None:
                lock.release()
        t2 = time.perf_counter()
        version = await self.publisher.publish(self.trainer, self.trainer.step)
        metrics.update(rollout_metrics(episodes))
        metrics.update(
            {
                "policy_version": float(version),
                "rollout_time_s": t1 - t0,
                "train_time_s": t2 - t1,
                "rollout_reward": mean_reward(episodes),
            }
        )
        if self.cfg.eval_every and self.trainer.step % self.cfg.eval_every == 0:
            evals = await self.evaluate()
            metrics["eval_reward"] = mean_reward(evals)
        await self.store.add_metrics(self.run.id, self.trainer.step, metrics)
        if self.cfg.save_every and (
            self.trainer.step % self.cfg.save_every == 0 or self.trainer.step == self.cfg.steps
        ):
            await asyncio.to_thread(_save, self.trainer, self.root, self.cfg.keep_checkpoints, {"run_id": self.run.id})
        self.history.append(metrics)
        return metrics

    async def run_steps(self, progress: ProgressFn | None = None) -> list[dict[str, float]]:
        """Create (or continue) the run and train until ``steps`` or ``stop()``."""
        await self.store.create_run(self.run)
        self.root.mkdir(parents=True, exist_ok=True)
        if self.trainer.step == 0:
            await self.resume()
        done: list[dict[str, float]] = []
        while self.trainer.step < self.cfg.steps and not self._stop:
            metrics = await self.step()
            done.append(metrics)
            if progress is not None:
                progress(self.trainer.step, metrics)
        return done


async def load_run(store: TrajectoryStore, run_id: str) -> tuple[Run, LoopConfig, TrainerConfig]:
    """The stored run ``run_id`` with its loop and trainer configs (``UserError`` if unusable)."""
    run = await store.get_run(run_id)
    if run is None:
        raise UserError(f"No run {run_id!r} in the store at {store.url}.")
    if run.kind not in ("train", "train-offline") or "trainer" not in run.config:
        raise UserError(f"Run {run_id} is a {run.kind!r} run, not a training run; it cannot be resumed.")
    loop = LoopConfig(**run.config.get("loop", {}))
    return run, loop, TrainerConfig.from_dict(run.config["trainer"])


# ----- offline: train on stored episodes -----


def make_groups(episodes: list[Episode]) -> list[list[Episode]]:
    """Episodes grouped by (run, policy version, task), in first-seen order."""
    groups: dict[str, list[Episode]] = {}
    for e in episodes:
        groups.setdefault(f"{group_key(e)}@{e.policy_version}", []).append(e)
    return list(groups.values())


async def train_offline(
    store: TrajectoryStore,
    source_run: str,
    module: Any,
    trainer_cfg: TrainerConfig,
    *,
    steps: int,
    batch_groups: int,
    pad_id: int = 0,
    model_name: str = "",
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[Run, list[dict[str, float]]]:
    """Train ``module`` for ``steps`` steps on the stored episodes of ``source_run``.

    Each step takes ``batch_groups`` groups (same task, same policy version) drawn
    deterministically from the run's episodes. Metrics go to a new ``train-offline`` run.
    """
    episodes = await select_episodes(store, run_id=source_run)
    if not episodes:
        raise UserError(f"Run {source_run!r} has no finished episodes in the store at {store.url}.")
    groups = make_groups(episodes)
    run = Run(
        kind="train-offline",
        suite=episodes[0].suite,
        model=model_name,
        config={"from_store": source_run, "trainer": trainer_cfg.to_dict(), "steps": steps, "batch": batch_groups},
    )
    await store.create_run(run)
    trainer = Trainer(module, trainer_cfg, pad_id=pad_id)
    root = checkpoint_root(run.id)
    root.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, float]] = []
    while trainer.step < steps and not should_stop():
        rng = random.Random(f"offline:{trainer_cfg.seed}:{trainer.step + 1}")
        picked = rng.sample(groups, min(batch_groups, len(groups)))
        batch = build_batch([e for g in picked for e in g])
        metrics = await asyncio.to_thread(trainer.train_step, batch)
        await store.add_metrics(run.id, trainer.step, metrics)
        await asyncio.to_thread(_save, trainer, root, 2, {"run_id": run.id})
        history.append(metrics)
        if progress is not None:
            progress(trainer.step, metrics)
    return run, history


def summary_json(run: Run, history: list[dict[str, float]], extra: dict[str, Any] | None = None) -> str:
    """The final ``--json`` summary of a training run."""
    last = history[-1] if history else {}
    out = {
        "run_id": run.id,
        "kind": run.kind,
        "steps": len(history),
        "last": last,
        "reward_first": history[0].get("reward_mean") if history else None,
        "reward_last": last.get("reward_mean"),
        **(extra or {}),
    }
    return json.dumps(out, default=float)
