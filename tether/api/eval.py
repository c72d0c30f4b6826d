"""Evaluation: run N tasks of a suite, score them, store rewards, and summarise.

Generic figures (accuracy, reward mean, turns, tool calls, invalid-call rate, tokens,
time, errors) are computed here; each suite adds its own through ``Suite.summarize``.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

from tether.api.agent import Agent
from tether.api.progress import EpisodeProgress
from tether.models import ChatModel
from tether.store.base import TrajectoryStore
from tether.suites import get_suite
from tether.types import Episode, Run, SamplingParams


def generic_figures(episodes: list[Episode]) -> dict[str, Any]:
    """Figures every suite shares."""
    n = len(episodes)
    rewards = [e.reward for e in episodes if e.reward is not None]
    calls = sum(e.metrics.get("tool_calls", 0.0) for e in episodes)
    invalid = sum(e.metrics.get("invalid_calls", 0.0) for e in episodes)
    statuses = Counter(e.status for e in episodes)
    return {
        "episodes": n,
        "reward_mean": sum(rewards) / len(rewards) if rewards else None,
        "mean_turns": sum(e.metrics.get("turns", 0.0) for e in episodes) / n if n else None,
        "mean_tool_calls": calls / n if n else None,
        "invalid_call_rate": invalid / calls if calls else 0.0,
        "tokens": int(sum(e.metrics.get("new_tokens", 0.0) for e in episodes)),
        "errors": statuses.get("error", 0),
        "truncated": statuses.get("truncated", 0),
        "reward_errors": sum(1 for e in episodes if e.reward_errors),
    }


def vote_figures(episodes: list[Episode]) -> dict[str, Any]:
    """Majority vote over each task's samples: the voted answer is correct when a sample giving it was."""
    from tether.training.rewards import majority_vote, normalize_answer

    by_task: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        by_task[e.task_id].append(e)
    correct = 0
    for samples in by_task.values():
        voted = majority_vote([e.final_answer or "" for e in samples])
        chosen = [e for e in samples if voted and normalize_answer(e.final_answer or "") == voted]
        correct += int(bool(chosen) and (chosen[0].reward or 0.0) > 0)
    return {"tasks": len(by_task), "vote_accuracy": correct / len(by_task) if by_task else None}


async def evaluate(
    suite_name: str,
    *,
    n: int,
    model: str | ChatModel,
    seed: int = 0,
    suite_options: dict[str, Any] | None = None,
    reasoning: str = "plain",
    samples: int = 1,
    vote: bool = False,
    concurrency: int = 4,
    max_turns: int | None = None,
    temperature: float | None = None,
    store: str | TrajectoryStore | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run and score ``n`` tasks (``samples`` each); return the report (also stored as rewards)."""
    suite = get_suite(suite_name, **(suite_options or {}))
    tasks = suite.tasks(n=n, seed=seed)
    temp = temperature if temperature is not None else (0.7 if samples > 1 else 0.0)
    sampling = SamplingParams(temperature=temp, max_tokens=256, seed=seed if temp > 0 else None)
    run = Run(kind="eval", suite=suite_name, model=model if isinstance(model, str) else model.name,
              config={"n": n, "seed": seed, "reasoning": reasoning, "samples": samples, **(suite_options or {})})
    started = time.monotonic()
    async with Agent(suite=suite, model=model, store=store, reasoning=reasoning, run=run,
                     max_turns=max_turns, sampling=sampling) as agent:
        with EpisodeProgress(total=len(tasks) * samples, label=f"eval {suite_name}", enabled=progress) as bar:
            episodes = await agent.run_many(tasks, concurrency=concurrency, group=samples, progress=bar.advance)
        report: dict[str, Any] = {"suite": suite_name, "model": run.model, "run": run.id, "reasoning": reasoning}
        report.update(generic_figures(episodes))
        report["time_s"] = time.monotonic() - started
        report.update(suite.summarize(episodes))
        if vote and samples > 1:
            report.update(vote_figures(episodes))
        report["store"] = agent.store.url
    return report
