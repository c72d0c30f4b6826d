"""``InDataSuite``: the Easy/Medium/Hard InData benchmark as a tether suite.

Options (``get_suite("indata", level=..., seed=..., dataset=..., per_template=..., k=...)``):

- ``level``: ``easy`` | ``medium`` | ``hard`` | ``all`` (default ``all``)
- ``seed``: dataset seed (default 0); the ``train`` split uses ``seed + 1000``
- ``dataset``: a built-in domain or comma-separated domains (default ``retail,hospital,hr``)
- ``per_template``: questions per template and domain (default 8)
- ``k``: the privacy policy's minimum group size (default 5)
- ``plain_answer``: also end an episode on a turn without a tool call, its text being the answer (default False)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from tether.config import cache_dir
from tether.errors import UserError
from tether.suites.base import RewardFn, Suite
from tether.tools.base import ToolSet
from tether.tools.indata.datasets import DOMAINS, arrow_tables, resolve
from tether.tools.indata.engine import SharedTables, Workspace
from tether.tools.indata.oracle import PLANS
from tether.tools.indata.policy import PrivacyPolicy
from tether.tools.indata.questions import LEVELS, SPECS, Question, generate_questions
from tether.tools.indata.scoring import score_answer
from tether.tools.indata.tools import INSTRUCTIONS, InDataToolSet
from tether.types import Episode, Task

_SHARED: dict[str, SharedTables] = {}
_SHARED_LOCK = threading.Lock()


def shared_tables(dataset: str) -> SharedTables:
    """The process-wide DuckDB database holding ``dataset``'s base tables (loaded once)."""
    with _SHARED_LOCK:
        if dataset not in _SHARED:
            ds = resolve(dataset)
            _SHARED[dataset] = SharedTables(arrow_tables(dataset), ds.sensitive, ds.descriptions)
        return _SHARED[dataset]


def build_workspace(dataset: str, policy: PrivacyPolicy | None = None) -> Workspace:
    """A fresh workspace over the tables of ``dataset`` (a spec or folder); close it when done."""
    return Workspace.on_shared(shared_tables(dataset), policy)


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    """A hash of the generator's code: cached questions are only reused by the code that made them."""
    from tether.tools.indata import datasets, questions

    h = hashlib.sha256()
    for mod in (datasets, questions):
        h.update(Path(str(mod.__file__)).read_bytes())
    return h.hexdigest()[:12]


@functools.lru_cache(maxsize=64)
def _questions(spec: str, domain: str, per_template: int, seed: int, levels: tuple[str, ...]) -> list[Question]:
    """Generated questions, cached in memory and as JSON under ``cache_dir()/indata/questions/``."""
    name = f"{spec.replace(':', '-')}-p{per_template}-s{seed}-{'+'.join(levels)}-{_code_version()}.json"
    path = cache_dir() / "indata" / "questions" / name
    if path.is_file():
        try:
            return [Question(**q) for q in json.loads(path.read_text(encoding="utf-8"))]
        except (ValueError, TypeError):
            pass  # unreadable cache: make it again
    made = generate_questions(resolve(spec), domain, per_template, seed, levels)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps([dataclasses.asdict(q) for q in made]), encoding="utf-8")
    tmp.replace(path)
    return made


class InDataSuite(Suite):
    """Secure multi-step data analysis through the ``indata`` tools, scored against pandas gold answers."""

    name = "indata"
    description = "InData: answer data questions only through secure, verified tools (easy/medium/hard)."
    plain_answer_ends = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.level = str(options.get("level", "all")).lower()
        if self.level not in (*LEVELS, "all"):
            raise UserError(f"Unknown InData level {self.level!r}; use easy, medium, hard or all.")
        raw = options.get("dataset") or ",".join(DOMAINS)
        self.domains = [d.strip() for d in str(raw).split(",") if d.strip()]
        for d in self.domains:
            if d not in SPECS:
                raise UserError(f"InData questions exist for {', '.join(SPECS)}, not {d!r}.")
        try:
            self.seed = int(options.get("seed", 0))
            self.per_template = int(options.get("per_template", 8))
            self.k = int(options.get("k", 5))
        except (TypeError, ValueError):
            raise UserError("InData options seed, per_template and k must be integers.") from None
        self.policy = PrivacyPolicy(k=self.k)
        # InData ends an episode with answer(value); plain_answer=True also accepts a turn without a tool call
        self.plain_answer_ends = bool(options.get("plain_answer", False))
        self._cache: dict[tuple[int, str], list[Task]] = {}

    def _all_tasks(self, seed: int, split: str) -> list[Task]:
        key = (seed, split)
        if key not in self._cache:
            ds_seed = self.seed + (1000 if split == "train" else 0)
            levels = LEVELS if self.level == "all" else (self.level,)
            tasks: list[Task] = []
            for domain in self.domains:
                spec = f"{domain}:{ds_seed}"
                for q in _questions(spec, domain, self.per_template, seed, levels):
                    PLANS[q.prompt] = q.plan
                    tasks.append(
                        Task(
                            id=q.id,
                            suite=self.name,
                            prompt=q.prompt,
                            gold=q.gold_spec,
                            metadata={
                                "level": q.level,
                                "domain": domain,
                                "dataset": spec,
                                "template": q.template,
                                "oracle_plan": q.plan,
                            },
                        )
                    )
            tasks.sort(key=lambda t: hashlib.sha256(f"{seed}/{t.id}".encode()).hexdigest())
            self._cache[key] = tasks
        return self._cache[key]

    def tasks(self, *, n: int | None = None, seed: int = 0, split: str = "test") -> list[Task]:
        """Up to ``n`` questions of the chosen level(s), in a seeded mixed order."""
        tasks = self._all_tasks(seed, split)
        return list(tasks if n is None else tasks[:n])

    def toolset(self, task: Task) -> ToolSet:
        """A fresh ``InDataToolSet`` over the task's dataset in an in-memory DuckDB."""
        dataset = task.metadata.get("dataset") or f"{self.domains[0]}:{self.seed}"
        return InDataToolSet(build_workspace(dataset, self.policy))

    def system_prompt(self, task: Task) -> str:
        """The InData rules for the model."""
        return INSTRUCTIONS

    def rewards(self) -> dict[str, tuple[float, RewardFn]]:
        """``correct``: 1 when the final answer matches the gold answer, else 0."""

        def correct(task: Task, episode: Episode) -> float:
            if not isinstance(task.gold, dict):
                raise ValueError(f"task {task.id} has no InData gold answer")
            return score_answer(episode.final_answer, task.gold)

        return {"correct": (1.0, correct)}

    def summarize(self, episodes: list[Episode]) -> dict[str, Any]:
        """Accuracy, mean tool calls, invalid-call rate and mean time, per level and overall."""
        by_level: dict[str, list[Episode]] = {}
        for ep in episodes:
            level = str(ep.task.metadata.get("level", "unknown")) if ep.task else "unknown"
            by_level.setdefault(level, []).append(ep)
        out: dict[str, Any] = {"levels": {lv: _figures(eps) for lv, eps in sorted(by_level.items())}}
        out["all"] = _figures(episodes)
        return out


def _figures(episodes: list[Episode]) -> dict[str, Any]:
    n = len(episodes)
    calls = [r for ep in episodes for s in ep.steps for r in s.tool_results]
    scored = [ep.rewards.get("correct") for ep in episodes]
    correct = sum(1 for v in scored if v == 1.0)
    return {
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "mean_tool_calls": len(calls) / n if n else 0.0,
        "invalid_call_rate": (sum(r.is_error for r in calls) / len(calls)) if calls else 0.0,
        "mean_time_s": (sum(ep.duration_ms for ep in episodes) / n / 1000) if n else 0.0,
    }
