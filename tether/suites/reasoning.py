"""Reasoning suites with verified answers: ``kk``, ``multihop`` and ``rg:TASK``.

* ``kk``: Knights and Knaves puzzles from reasoning-gym (``knights_knaves``, 3–8 people);
  the intermediate gold answers are each person's status (``"Avery is a saint"``), the
  final answer is judged person by person (order-free, last statement per person wins).
* ``multihop``: generated 3- and 4-hop questions over short generated contexts
  (``tether.suites.multihop``); every hop's answer is gold.
* ``rg:TASK``: any reasoning-gym task, the final answer scored by the task's own
  verifier (``score_answer`` = 1.0 is correct); no intermediate gold answers.

No tools: ``toolset`` is empty and a turn without a tool call ends the episode. Scoring is
mode-aware. For the tagged modes (``interleaved``, ``think-answer``) the rewards are the
parts of ``tether.training.rewards.interleaved_reward`` on the last model turn
(``format``, ``final``, ``intermediate``, weight 1 each) plus ``correct`` (weight 0); for
``plain`` the only reward is ``correct`` (1 or 0). The mode is the ``reasoning`` option
when given (``get_suite("kk", reasoning="interleaved")``), otherwise it is read off the
episode: tagged modes store a ``format_error`` metric, plain does not.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from functools import lru_cache
from typing import Any, cast

from tether.errors import UserError
from tether.suites.base import RewardFn, Suite
from tether.suites.multihop import make_question
from tether.tools.base import ToolSet
from tether.training.rewards import VARIANTS, Judge, RewardBreakdown, Variant, exact_match, interleaved_reward
from tether.types import Episode, Task

#: the eight tasks of the backtracking study; ``rg:TASK`` accepts any reasoning-gym task
BACKTRACKING_TASKS = (
    "countdown",
    "sudoku",
    "arc_1d",
    "advanced_geometry",
    "color_cube_rotation",
    "list_functions",
    "zebra_puzzles",
    "self_reference",
)
TAGGED_MODES = ("interleaved", "think-answer")
_RG_SIZE = 1_000_000  # reasoning-gym datasets are lazy: items depend on seed + index only
_SPLIT_BASE = {"test": 1_000_000_007, "train": 2_000_000_011}

SYSTEM_PROMPT = "You are a helpful assistant that solves reasoning problems carefully."


class _NoTools(ToolSet):
    name = "none"


def _split_seed(split: str, seed: int) -> int:
    if split not in _SPLIT_BASE:
        raise UserError(f"Unknown split {split!r}; use 'test' or 'train'.")
    return _SPLIT_BASE[split] + seed * _RG_SIZE


@lru_cache(maxsize=64)
def _rg_dataset(name: str, seed: int, config: tuple[tuple[str, Any], ...] = ()) -> Any:
    import reasoning_gym

    return reasoning_gym.create_dataset(name, size=_RG_SIZE, seed=seed, **dict(config))


@lru_cache(maxsize=1024)
def _rg_entry(name: str, seed: int, index: int) -> Any:
    return _rg_dataset(name, seed)[index]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


class ReasoningSuite(Suite):
    """Shared scoring and summary of the reasoning suites (see the module doc).

    Options: ``reasoning`` (``plain``/``interleaved``/``think-answer``; default: read off
    each episode) and ``variant`` of the intermediate reward (default ``time_discounted``).
    """

    plain_answer_ends = True

    def __init__(self, reasoning: str | None = None, variant: str = "time_discounted", **options: Any) -> None:
        super().__init__(**options)
        if reasoning is not None and reasoning not in ("plain", *TAGGED_MODES):
            raise UserError(f"Unknown reasoning mode {reasoning!r}; choose plain, interleaved or think-answer.")
        if variant not in VARIANTS:
            raise UserError(f"Unknown reward variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
        self.reasoning = reasoning
        self.variant = variant
        self._breakdowns: dict[tuple[str, str, str], RewardBreakdown] = {}

    # ----- per-suite hooks -----

    def judge(self, task: Task) -> Judge:
        """The final-answer judge of ``task``: ``(answer, gold) -> True / False / None (unparseable)``."""
        return exact_match

    # ----- suite API -----

    def toolset(self, task: Task) -> ToolSet:
        """No tools: these tasks are solved by reasoning alone."""
        return _NoTools()

    def system_prompt(self, task: Task) -> str:
        """A short instruction; the reasoning mode adds its own."""
        return SYSTEM_PROMPT

    def rewards(self) -> dict[str, tuple[float, RewardFn]]:
        """The rubric for the configured mode (tagged when ``reasoning`` is a tagged mode)."""
        return self._rubric(tagged=self.reasoning in TAGGED_MODES)

    def is_tagged(self, episode: Episode) -> bool:
        """Whether ``episode`` ran in a tagged mode (option, else its ``format_error`` metric)."""
        if self.reasoning is not None:
            return self.reasoning in TAGGED_MODES
        return "format_error" in episode.metrics

    def score(self, task: Task, episode: Episode) -> tuple[dict[str, float | None], dict[str, str]]:
        """Run the episode's rubric: (values, errors); ``total`` is the weighted sum, None on any error."""
        values: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        total = 0.0
        for name, (weight, fn) in self._rubric(tagged=self.is_tagged(episode)).items():
            try:
                value = float(fn(task, episode))
            except Exception as exc:  # a failing reward is an error, never 0
                errors[name] = f"{type(exc).__name__}: {exc}"
                values[name] = None
                continue
            values[name] = value
            total += weight * value
        values["total"] = None if errors else total
        return values, errors

    # ----- rubric -----

    def _rubric(self, *, tagged: bool) -> dict[str, tuple[float, RewardFn]]:
        if not tagged:
            return {"correct": (1.0, self._correct_plain)}
        return {
            "format": (1.0, lambda t, e: self.breakdown(t, e).format),
            "final": (1.0, lambda t, e: self.breakdown(t, e).final),
            "intermediate": (1.0, lambda t, e: self.breakdown(t, e).intermediate),
            "correct": (0.0, lambda t, e: 1.0 if self.breakdown(t, e).final_correct else 0.0),
        }

    @staticmethod
    def response(episode: Episode) -> str:
        """The text of the episode's last model turn; ``ValueError`` when the episode holds none.

        (Scoring an episode without its steps would silently read as a format error.)
        """
        steps = episode.model_steps
        if not steps:
            raise ValueError(f"episode {episode.id} holds no model turn to score")
        return steps[-1].text

    @staticmethod
    def gold(task: Task) -> tuple[list[str], str]:
        """(gold intermediate answers, gold final answer) of a task."""
        if not isinstance(task.gold, dict) or "final" not in task.gold:
            raise ValueError(f"task {task.id} has no gold answer")
        return [str(a) for a in task.gold.get("intermediate", [])], str(task.gold["final"])

    def breakdown(self, task: Task, episode: Episode) -> RewardBreakdown:
        """``interleaved_reward`` of the episode's last model turn (gate open: no batch figures here)."""
        response = self.response(episode)
        key = (task.id, episode.id, response)
        cached = self._breakdowns.get(key)
        if cached is None:
            inter, final = self.gold(task)
            cached = interleaved_reward(
                response, inter, final, variant=cast(Variant, self.variant), judge=self.judge(task)
            )
            if len(self._breakdowns) > 256:
                self._breakdowns.clear()
            self._breakdowns[key] = cached
        return cached

    def _correct_plain(self, task: Task, episode: Episode) -> float:
        _, final = self.gold(task)
        if not episode.final_answer:
            return 0.0
        return 1.0 if self.judge(task)(episode.final_answer, final) else 0.0

    # ----- summary -----

    def summarize(self, episodes: list[Episode]) -> dict[str, Any]:
        """Pass@1, mean time to first answer (fraction of the response in characters and in
        tokens, and wall-clock ms), reward breakdown means, format-error rate and mean
        number of intermediate answers."""

        def metric(name: str) -> list[float]:
            return [e.metrics[name] for e in episodes if name in e.metrics]

        def reward(name: str) -> list[float]:
            return [v for e in episodes if (v := e.rewards.get(name)) is not None]

        correct = [float(e.rewards.get("correct") or 0.0) for e in episodes]
        out: dict[str, Any] = {
            "pass@1": _mean(correct),
            "ttfa_fraction_mean": _mean(metric("ttfa_fraction")),
            "ttfa_token_fraction_mean": _mean(metric("ttfa_token_fraction")),
            "ttfa_ms_mean": _mean(metric("ttfa_ms")),
            "format_error_rate": _mean(metric("format_error")),
            "n_intermediate_mean": _mean(metric("n_intermediate")),
        }
        for part in ("format", "final", "intermediate", "total"):
            out[f"reward_{part}_mean"] = _mean(reward(part))
        out.update(self._breakdown_by_level(episodes, correct))
        return out

    def _breakdown_by_level(self, episodes: list[Episode], correct: list[float]) -> dict[str, Any]:
        groups: dict[str, list[float]] = defaultdict(list)
        for e, c in zip(episodes, correct, strict=True):
            level = (e.task.metadata.get("level") if e.task is not None else None) or None
            if level is not None:
                groups[str(level)].append(c)
        if not groups:
            return {}
        return {"pass@1_by_level": {k: _mean(v) for k, v in sorted(groups.items())}}


# ----- kk -----

_ROLE = r"\b{name}\b\W+is\W+(?:a|an)\s+([a-z]+)"


def kk_judge(names: list[str], knight: str, knave: str, solution: list[bool]) -> Judge:
    """A judge for Knights and Knaves answers.

    For each person the *last* ``"<name> is a/an <role>"`` statement counts; the answer is
    unparseable (None) when a person has no such statement with one of the two role
    words, correct when every role matches ``solution``.
    """

    def judge(answer: str, gold: str) -> bool | None:
        text = answer.lower()
        for name, truth in zip(names, solution, strict=True):
            found = re.findall(_ROLE.format(name=re.escape(name.lower())), text)
            found = [w for w in found if w in (knight, knave)]
            if not found:
                return None
            if (found[-1] == knight) != truth:
                return False
        return True

    return judge


class KnightsKnavesSuite(ReasoningSuite):
    """Knights and Knaves (reasoning-gym ``knights_knaves``) with 3–8 people.

    Options: ``people`` (an int or a list of ints in 3..8; default 3..8, cycled over tasks).
    """

    name = "kk"
    description = "Knights and Knaves puzzles (3-8 people); per-person statuses are the intermediate answers."

    def __init__(self, people: int | list[int] | None = None, **options: Any) -> None:
        super().__init__(**options)
        counts = list(range(3, 9)) if people is None else ([people] if isinstance(people, int) else list(people))
        if not counts or any(not 2 <= c <= 12 for c in counts):
            raise UserError("kk people counts must be between 2 and 12.")
        self.people = counts

    def tasks(self, *, n: int | None = None, seed: int = 0, split: str = "test") -> list[Task]:
        """``n`` puzzles (default 60), people counts cycling through ``people``."""
        count = 60 if n is None else n
        return [self._make(split, seed, i) for i in range(count)]

    def task(self, task_id: str) -> Task:
        """Rebuild a task from its id (``kk-SPLIT-SEED-INDEX``)."""
        m = re.fullmatch(r"kk-(test|train)-(\d+)-(\d+)", task_id)
        if m is None:
            raise KeyError(task_id)
        return self._make(m.group(1), int(m.group(2)), int(m.group(3)))

    def _make(self, split: str, seed: int, i: int) -> Task:
        people = self.people[i % len(self.people)]
        ds = _rg_dataset("knights_knaves", _split_seed(split, seed), (("n_people", people),))
        entry = ds[i // len(self.people)]
        meta = entry["metadata"]
        names = [str(x) for x in meta["names"]]
        terms = meta["knight_knave_terms"]
        solution = [bool(x) for x in meta["solution"]]
        statuses = [
            f"{name} is {terms['a_knight'] if truth else terms['a_knave']}"
            for name, truth in zip(names, solution, strict=True)
        ]
        hint = (
            f"\nWhen you state one person's status on its own, write it like "
            f'"{names[0]} is {terms["a_knight"]}" or "{names[0]} is {terms["a_knave"]}".'
        )
        return Task(
            id=f"kk-{split}-{seed}-{i}",
            suite=self.name,
            prompt=str(entry["question"]) + hint,
            gold={
                "final": str(entry["answer"]),
                "intermediate": statuses,
                "names": names,
                "roles": {"knight": str(terms["knight"]), "knave": str(terms["knave"])},
                "solution": solution,
            },
            metadata={"level": people, "n_people": people},
        )

    def judge(self, task: Task) -> Judge:
        """Per-person roles (see ``kk_judge``)."""
        g = task.gold
        return kk_judge(g["names"], g["roles"]["knight"], g["roles"]["knave"], g["solution"])


# ----- multihop -----


class MultiHopSuite(ReasoningSuite):
    """Generated multi-hop questions (3 and 4 hops) over short generated contexts.

    Options: ``hops`` (an int or a list; default ``[3, 4]``, cycled over tasks).
    """

    name = "multihop"
    description = "Generated 3- and 4-hop questions over short contexts; each hop's answer is gold."

    def __init__(self, hops: int | list[int] | None = None, **options: Any) -> None:
        super().__init__(**options)
        counts = [3, 4] if hops is None else ([hops] if isinstance(hops, int) else list(hops))
        if not counts or any(not 1 <= h <= 8 for h in counts):
            raise UserError("multihop hops must be between 1 and 8.")
        self.hops = counts

    def tasks(self, *, n: int | None = None, seed: int = 0, split: str = "test") -> list[Task]:
        """``n`` questions (default 60), hop counts cycling through ``hops``."""
        count = 60 if n is None else n
        return [self._make(split, seed, i) for i in range(count)]

    def task(self, task_id: str) -> Task:
        """Rebuild a task from its id (``multihop-SPLIT-SEED-INDEX``)."""
        m = re.fullmatch(r"multihop-(test|train)-(\d+)-(\d+)", task_id)
        if m is None:
            raise KeyError(task_id)
        return self._make(m.group(1), int(m.group(2)), int(m.group(3)))

    def _make(self, split: str, seed: int, i: int) -> Task:
        hops = self.hops[i % len(self.hops)]
        rng = random.Random(f"multihop/{_split_seed(split, seed)}/{i}")
        q = make_question(rng, hops)
        context = "\n".join(f"- {fact}" for fact in q.facts)
        prompt = f"Context:\n{context}\n\nQuestion: {q.question}\nAnswer with a name only."
        return Task(
            id=f"multihop-{split}-{seed}-{i}",
            suite=self.name,
            prompt=prompt,
            gold={"final": q.final, "intermediate": q.intermediate, "hops": q.hops},
            metadata={"level": hops, "hops": hops},
        )


# ----- rg:TASK -----


def _rg_names() -> list[str]:
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


class ReasoningGymSuite(ReasoningSuite):
    """Any reasoning-gym task (``rg:countdown``), scored by the task's own verifier."""

    description = "A reasoning-gym task scored by its own verifier (score_answer == 1 is correct)."

    def __init__(self, task: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        if not task:
            raise UserError(
                "Name a reasoning-gym task as rg:TASK, e.g. rg:" + ", rg:".join(BACKTRACKING_TASKS[:3]) + "."
            )
        names = _rg_names()
        if task not in names:
            close = [n for n in names if task in n or n in task][:5] or list(BACKTRACKING_TASKS)
            raise UserError(f"Unknown reasoning-gym task {task!r}; for example: {', '.join(close)}.")
        self.rg_task = task
        self.name = f"rg:{task}"

    def tasks(self, *, n: int | None = None, seed: int = 0, split: str = "test") -> list[Task]:
        """``n`` items (default 50) of the task."""
        count = 50 if n is None else n
        return [self._make(split, seed, i) for i in range(count)]

    def task(self, task_id: str) -> Task:
        """Rebuild a task from its id (``rg:TASK-SPLIT-SEED-INDEX``)."""
        m = re.fullmatch(re.escape(self.name) + r"-(test|train)-(\d+)-(\d+)", task_id)
        if m is None:
            raise KeyError(task_id)
        return self._make(m.group(1), int(m.group(2)), int(m.group(3)))

    def _entry(self, split: str, seed: int, i: int) -> dict[str, Any]:
        entry: dict[str, Any] = _rg_entry(self.rg_task, _split_seed(split, seed), i)
        return entry

    def _make(self, split: str, seed: int, i: int) -> Task:
        entry = self._entry(split, seed, i)
        difficulty = entry.get("metadata", {}).get("difficulty")
        return Task(
            id=f"{self.name}-{split}-{seed}-{i}",
            suite=self.name,
            prompt=str(entry["question"]),
            gold={"final": "" if entry["answer"] is None else str(entry["answer"]), "intermediate": []},
            metadata={"rg_task": self.rg_task, "split": split, "seed": seed, "index": i,
                      "difficulty": _jsonable(difficulty)},
        )  # fmt: skip

    def judge(self, task: Task) -> Judge:
        """reasoning-gym's ``score_answer`` on the original item: 1.0 is correct, an empty answer unparseable."""
        meta = task.metadata
        entry = self._entry(meta["split"], int(meta["seed"]), int(meta["index"]))
        ds = _rg_dataset(self.rg_task, _split_seed(meta["split"], int(meta["seed"])))

        def judge(answer: str, gold: str) -> bool | None:
            if not answer.strip():
                return None
            return bool(ds.score_answer(answer, entry) >= 1.0)

        return judge


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)
