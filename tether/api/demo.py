"""``make demo``: the main job on embedded defaults (local model, SQLite store).

Runs a small batch of calc episodes (and, where their suites are installed, a few
InData Easy and long-context episodes) with a progress bar, and returns the summary
the CLI prints as a table.
"""

from __future__ import annotations

import time
from typing import Any

from tether.api.agent import Agent
from tether.api.progress import EpisodeProgress
from tether.models import ChatModel, load_model
from tether.store import open_store
from tether.suites import get_suite
from tether.types import Episode, Run, SamplingParams

#: (suite name, suite options, episodes relative to ``n``) run by the demo: calculator tool use,
#: InData Easy questions, and one long-context question over a 2,000-document corpus.
DEMO_SUITES: list[tuple[str, dict[str, Any], float]] = [
    ("calc", {}, 1.0),
    ("indata", {"level": "easy", "per_template": 2}, 0.5),
    ("longctx", {"size": 2000, "mode": "fs"}, 0.2),
]


def _row(suite: str, episodes: list[Episode], seconds: float) -> dict[str, Any]:
    n = len(episodes)
    success = sum(1 for e in episodes if (e.reward or 0.0) > 0)
    return {
        "suite": suite,
        "episodes": n,
        "success_rate": success / n if n else 0.0,
        "mean_turns": sum(e.metrics.get("turns", 0.0) for e in episodes) / n if n else 0.0,
        "tokens": int(sum(e.metrics.get("new_tokens", 0.0) for e in episodes)),
        "time_s": seconds,
        "statuses": {s: sum(1 for e in episodes if e.status == s) for s in {e.status for e in episodes}},
    }


async def run_demo(n: int = 6, model: str | ChatModel = "local", store: str | None = None,
                   progress: bool = True, concurrency: int = 4) -> dict[str, Any]:
    """Run the demo batch; returns per-suite rows, run ids and the store URL.

    Episodes of a suite run ``concurrency`` at a time (the local backend batches them).
    """

    chat_model = load_model(model) if isinstance(model, str) else model
    db = await open_store(store)
    rows, runs = [], []
    try:
        for suite_name, options, share in DEMO_SUITES:
            suite = get_suite(suite_name, **options)
            count = max(1, round(n * share))
            tasks = suite.tasks(n=count, seed=0)
            run = Run(kind="demo", suite=suite_name, model=chat_model.name, config=options)
            started = time.monotonic()
            sampling = SamplingParams(temperature=0.0, max_tokens=128)
            async with Agent(suite=suite, model=chat_model, store=db, run=run, max_turns=4, max_new_tokens=384,
                             sampling=sampling) as agent:
                with EpisodeProgress(total=len(tasks), label=f"demo {suite_name}", enabled=progress) as bar:
                    episodes = await agent.run_many(tasks, concurrency=concurrency, progress=bar.advance)
            rows.append(_row(suite_name, episodes, time.monotonic() - started))
            runs.append(run.id)
        return {"suites": rows, "runs": runs, "store": db.url}
    finally:
        await db.close()
        if isinstance(model, str):
            await chat_model.aclose()
