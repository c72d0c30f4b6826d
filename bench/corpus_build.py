"""Bench: building a large corpus, and the fs ``grep`` tool against ripgrep on the host.

    .venv/bin/python bench/corpus_build.py [--docs 100000] [--doc-tokens 1000] [--runs 5] [--out DIR] [--keep]

1. Builds a generated ``longctx`` corpus of ``--docs`` documents (about ``--doc-tokens``
   tokens each: 10^5 x 10^3 = 10^8 tokens) and prints documents per second and MB/s.
2. For a rare pattern (one planted fact), a multi-hop lookup and a frequent pattern,
   times the ``grep`` tool (inside the bwrap sandbox, output capped for the model) and
   ``rg`` run directly on the host over the same folder with the same flags, in the same
   run, after one warm-up each; prints the medians and the ratio (target: at most 2x).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tether.tools.base import ToolSet
from tether.tools.fs.corpus import write_corpus
from tether.tools.fs.generator import build_world, iter_documents, questions
from tether.tools.fs.tools import FsToolSet
from tether.types import ToolCall


def build(out: Path, docs: int, doc_tokens: int) -> float:
    world = build_world(docs, seed=0, doc_tokens=doc_tokens)
    start = time.perf_counter()
    manifest = write_corpus(iter_documents(world), out, source="bench", source_kind="generated", force=True)
    seconds = time.perf_counter() - start
    print(
        f"build: {manifest.documents:,} documents, {manifest.bytes / 1e6:,.0f} MB, ~{manifest.est_tokens:,} tokens, "
        f"{manifest.folders:,} folders in {seconds:.1f}s = {manifest.documents / seconds:,.0f} docs/s, "
        f"{manifest.bytes / 1e6 / seconds:,.1f} MB/s"
    )
    return seconds


def host_rg(corpus: Path, pattern: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["rg", "--no-config", "-uu", "--no-heading", "--with-filename", "--line-number", "-e", pattern, str(corpus)],
        stdout=subprocess.PIPE,
        check=False,
    )
    return time.perf_counter() - start


async def tool_grep(fs: ToolSet, pattern: str) -> float:
    start = time.perf_counter()
    result = await fs.call(ToolCall(name="grep", arguments={"pattern": pattern, "path": "/corpus"}))
    assert not result.is_error, result.content
    return time.perf_counter() - start


async def bench_grep(corpus: Path, patterns: dict[str, str], runs: int) -> None:
    async with FsToolSet(corpus=corpus) as fs:
        print(f"{'pattern':<10}{'host rg (s)':>12}{'fs grep (s)':>12}{'ratio':>8}")
        for label, pattern in patterns.items():
            host_rg(corpus, pattern)
            await tool_grep(fs, pattern)  # warm-up both (page cache, sandbox)
            host, tool = [], []
            for _ in range(runs):
                host.append(host_rg(corpus, pattern))
                tool.append(await tool_grep(fs, pattern))
            h, t = statistics.median(host), statistics.median(tool)
            print(f"{label:<10}{h:>12.3f}{t:>12.3f}{t / h:>7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--doc-tokens", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="where to build (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the corpus afterwards")
    args = parser.parse_args()
    if shutil.which("rg") is None:
        raise SystemExit("ripgrep (rg) is not installed on the host")
    root = Path(tempfile.mkdtemp(prefix="tether-bench-corpus-", dir="/var/tmp"))
    root.chmod(0o755)  # the sandbox reads the corpus as its own user
    out = args.out or root / "corpus"
    try:
        build(out, args.docs, args.doc_tokens)
        world = build_world(args.docs, seed=0, doc_tokens=args.doc_tokens)
        qs = questions(world, 1)
        project = qs[0].question.split("Project ", 1)[1].split("?")[0]
        person = qs[1].question.split("office of ", 1)[1].split("'s manager")[0]
        patterns = {
            "needle": f"^The access code for Project {project} is ",
            "multihop": f"^{person}'s manager is ",
            "frequent": "incident report",
        }
        asyncio.run(bench_grep(out, patterns, args.runs))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
