"""The ``longctx`` suite: questions over a synthetic corpus far larger than any context window.

Options (``get_suite("longctx", size=..., mode=..., seed=...)``; CLI ``--size/--mode/--seed``):

- ``size``: documents in the corpus: an integer (at least 40) or ``small`` (1,000),
  ``medium`` (10,000), ``large`` (100,000). About ``doc_tokens`` (default 1,000) tokens each.
- ``mode``: ``fs`` (the fs tools in a sandbox, corpus at ``/corpus``), ``full`` (as much
  of the corpus as fits ``context_tokens`` in the prompt, no tools) or ``rag`` (the top
  BM25 chunks that fit ``context_tokens``, no tools).
- ``seed``: which corpus (default 0; added to the ``tasks(seed=...)`` seed); ``split="train"``
  uses a different corpus.
- ``context_tokens`` (default 6,000), ``top_k`` (default 8), ``per_type`` (default 25
  questions of each type), ``doc_tokens``, ``corpus_root`` (where generated corpora are
  kept; default ``cache_dir()/fs/corpora``, or ``/var/tmp/tether-UID/corpora``
  when the cache dir is private, since the sandbox user must be able to read them).

Question types: needle, multihop, count, sum (see ``generator``). Reward ``correct``: exact
match after normalisation, numbers scored ``0.75**|y-ŷ|``. ``summarize`` reports accuracy
per type, tokens read by the model, tool calls and time.
"""

from __future__ import annotations

import statistics
import threading
from pathlib import Path
from typing import Any

from tether.config import cache_dir
from tether.errors import UserError
from tether.suites.base import RewardFn, Suite
from tether.tools.base import ToolSet
from tether.tools.fs.baselines import Bm25Index, est_tokens, full_context, rag_context
from tether.tools.fs.corpus import MANIFEST, write_corpus
from tether.tools.fs.generator import GENERATOR_VERSION, QTYPES, build_world, iter_documents, questions
from tether.tools.fs.sandbox import shared_dir
from tether.tools.fs.scoring import score_answer
from tether.tools.fs.tools import FS_INSTRUCTIONS, FsToolSet
from tether.types import Episode, Task

SIZES = {"tiny": 200, "small": 1_000, "medium": 10_000, "large": 100_000}
MODES = ("fs", "full", "rag")
_build_lock = threading.Lock()


def parse_size(size: int | str) -> int:
    """Documents for a ``size`` option (an integer or a named size); ``UserError`` if invalid."""
    if isinstance(size, int):
        value = size
    elif str(size).lower() in SIZES:
        value = SIZES[str(size).lower()]
    else:
        try:
            value = int(float(str(size).replace("_", "")))
        except ValueError:
            raise UserError(f"Size {size!r} must be a number of documents or one of {', '.join(SIZES)}.") from None
    if value < 40 or value > 1_000_000:
        raise UserError(f"Size must be between 40 and 1,000,000 documents, not {value}.")
    return value


def ensure_corpus(size: int, seed: int, doc_tokens: int = 1000, root: Path | None = None) -> Path:
    """The generated corpus for ``(size, seed, doc_tokens)``, built on first use and reused after."""
    base = root or shared_dir(cache_dir() / "fs" / "corpora")
    out = base / f"longctx-v{GENERATOR_VERSION}-n{size}-s{seed}-t{doc_tokens}"
    if (out / MANIFEST).is_file():
        return out
    with _build_lock:
        if (out / MANIFEST).is_file():
            return out
        world = build_world(size, seed, doc_tokens)
        extra = {"generator": "longctx", "version": GENERATOR_VERSION, "size": size, "seed": seed}
        try:
            write_corpus(
                iter_documents(world), out, source=f"longctx generator (size={size}, seed={seed})",
                source_kind="generated", split={"mode": "one document per generated record"}, force=True,
                extra=extra,
            )  # fmt: skip
        except OSError:
            if not (out / MANIFEST).is_file():  # another process won the race
                raise
    return out


class LongCtxSuite(Suite):
    """Long-context questions answered through the file system (or the full/rag baselines)."""

    name = "longctx"
    description = "questions over a corpus of 10^3-10^5 documents: needle, multi-hop, counting, sums"

    def __init__(
        self,
        size: int | str = "small",
        mode: str = "fs",
        seed: int | str = 0,
        doc_tokens: int | str = 1000,
        context_tokens: int | str = 6000,
        top_k: int | str = 8,
        per_type: int | str = 25,
        corpus_root: str | Path | None = None,
        **options: Any,
    ) -> None:
        super().__init__(size=size, mode=mode, seed=seed, **options)
        if mode not in MODES:
            raise UserError(f"Mode {mode!r} is not one of {', '.join(MODES)}.")
        try:
            self.seed, self.doc_tokens = int(seed), int(doc_tokens)
            self.context_tokens, self.top_k, self.per_type = int(context_tokens), int(top_k), int(per_type)
        except ValueError as exc:
            raise UserError(f"longctx options must be integers ({exc}).") from None
        if self.doc_tokens < 20 or self.context_tokens < 100 or self.top_k < 1 or self.per_type < 1:
            raise UserError("longctx needs doc_tokens >= 20, context_tokens >= 100, top_k >= 1 and per_type >= 1.")
        self.size = parse_size(size)
        self.mode = mode
        self.corpus_root = Path(corpus_root) if corpus_root else None
        self._bm25: dict[Path, Bm25Index] = {}
        self._full: dict[Path, str] = {}

    def corpus_seed(self, seed: int = 0, split: str = "test") -> int:
        """The generator seed of the corpus for a ``tasks`` seed and split."""
        return self.seed + seed + (0 if split == "test" else 100_003)

    def corpus(self, seed: int = 0, split: str = "test") -> Path:
        """The host folder of the corpus for ``seed``/``split`` (built on first use)."""
        return ensure_corpus(self.size, self.corpus_seed(seed, split), self.doc_tokens, self.corpus_root)

    def tasks(self, *, n: int | None = None, seed: int = 0, split: str = "test") -> list[Task]:
        """Up to ``n`` questions, interleaved by type, over the corpus of seed ``seed`` option + ``seed``."""
        corpus = self.corpus(seed, split)
        corpus_seed = self.corpus_seed(seed, split)
        world = build_world(self.size, corpus_seed, self.doc_tokens)
        out: list[Task] = []
        for q in questions(world, self.per_type)[: n if n is not None else None]:
            prompt = q.question
            meta: dict[str, Any] = {
                "qtype": q.qtype,
                "question": q.question,
                "corpus": str(corpus),
                "mode": self.mode,
                "size": self.size,
                "seed": corpus_seed,
                "evidence": q.evidence,
            }
            if self.mode == "full":
                context = self._full_context(corpus)
                prompt = f"Documents (the first part of the corpus that fits):\n\n{context}\n\nQuestion: {q.question}"
            elif self.mode == "rag":
                context, chunks = rag_context(self._index(corpus), q.question, self.context_tokens, self.top_k)
                meta["chunks"] = chunks
                prompt = f"Retrieved passages:\n\n{context}\n\nQuestion: {q.question}"
            meta["prompt_tokens"] = est_tokens(prompt)
            out.append(
                Task(id=f"{self.mode}-n{self.size}-s{corpus_seed}-{q.id}", suite=self.name, prompt=prompt,
                     gold=q.gold, metadata=meta)
            )  # fmt: skip
        return out

    def task_from_prompt(self, prompt: str) -> Task:
        """An ad-hoc question about the suite's corpus (no gold answer)."""
        return Task(id="prompt", suite=self.name, prompt=prompt, metadata={"corpus": str(self.corpus())})

    def _full_context(self, corpus: Path) -> str:
        if corpus not in self._full:
            self._full[corpus] = full_context(corpus, self.context_tokens)[0]
        return self._full[corpus]

    def _index(self, corpus: Path) -> Bm25Index:
        if corpus not in self._bm25:
            self._bm25[corpus] = Bm25Index(corpus)
        return self._bm25[corpus]

    def toolset(self, task: Task) -> ToolSet:
        """The fs tools on the task's corpus (mode ``fs``), or no tools (``full``/``rag``)."""
        if self.mode != "fs":
            return ToolSet()
        meta = task.metadata
        corpus = Path(meta["corpus"]) if meta.get("corpus") else self.corpus()
        if not (corpus / MANIFEST).is_file() and "size" in meta and "seed" in meta:
            corpus = ensure_corpus(int(meta["size"]), int(meta["seed"]), self.doc_tokens, self.corpus_root)
        return FsToolSet(corpus=corpus)

    def system_prompt(self, task: Task) -> str:
        """Instructions: explore ``/corpus`` with tools (fs), or read the given documents (full/rag)."""
        if self.mode == "fs":
            return (
                "You answer questions about a large collection of documents that is far too big to read in full.\n"
                f"{FS_INSTRUCTIONS}\n"
                "Search, read only what you need, and follow references from one document to another.\n"
                "When you know the answer, reply with the answer only and no tool call."
            )
        return (
            "You answer questions using only the documents in the user message. "
            "Reply with the answer only. If the documents do not contain it, give your best guess."
        )

    def rewards(self) -> dict[str, tuple[float, RewardFn]]:
        """``correct``: exact match after normalisation; numeric answers 0.75^|y-ŷ|."""
        return {"correct": (1.0, _correct)}

    def summarize(self, episodes: list[Episode]) -> dict[str, Any]:
        """Accuracy per question type, tokens read by the model, tool calls and time."""
        rows: dict[str, list[Episode]] = {}
        for ep in episodes:
            qtype = str((ep.task.metadata if ep.task else {}).get("qtype", "unknown"))
            rows.setdefault(qtype, []).append(ep)

        def stats(eps: list[Episode]) -> dict[str, Any]:
            scores = [ep.rewards.get("correct") or 0.0 for ep in eps]
            return {
                "n": len(eps),
                "accuracy": round(statistics.fmean(scores), 4) if scores else None,
                "tokens_read": round(statistics.fmean(tokens_read(ep) for ep in eps), 1) if eps else 0,
                "tool_calls": round(statistics.fmean(ep.metrics.get("tool_calls", 0.0) for ep in eps), 2) if eps else 0,
                "seconds": round(statistics.fmean(ep.duration_ms / 1000 for ep in eps), 3) if eps else 0,
                "errors": sum(ep.status == "error" for ep in eps),
            }

        order = [t for t in QTYPES if t in rows] + sorted(t for t in rows if t not in QTYPES)
        return {
            "mode": self.mode,
            "size": self.size,
            "by_type": {t: stats(rows[t]) for t in order},
            "overall": stats(episodes),
        }


def _correct(task: Task, episode: Episode) -> float:
    return score_answer(task.gold, episode.final_answer, str(task.metadata.get("question", "")))


def tokens_read(episode: Episode) -> int:
    """Estimated tokens of corpus text the model was shown: the prompt plus every tool result."""
    prompt = episode.task.prompt if episode.task else ""
    seen = sum(len(r.content) for s in episode.steps for r in s.tool_results)
    return est_tokens(prompt) + seen // 4


def summary_table(summary: dict[str, Any]) -> str:
    """A plain-text table of ``LongCtxSuite.summarize`` output."""
    lines = [f"longctx mode={summary['mode']} size={summary['size']}"]
    lines.append(f"{'type':<10}{'n':>5}{'accuracy':>10}{'tokens':>10}{'calls':>8}{'sec':>8}")
    for name, row in [*summary["by_type"].items(), ("overall", summary["overall"])]:
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        lines.append(
            f"{name:<10}{row['n']:>5}{acc:>10}{row['tokens_read']:>10.0f}{row['tool_calls']:>8.1f}{row['seconds']:>8.2f}"
        )
    return "\n".join(lines)
