"""The two baselines the fs agent is compared with: full context and BM25 retrieval.

- ``full_context``: as much of the corpus as fits in the token budget, documents in
  index order (the evidence may well not fit: that is the point of the comparison).
- ``Bm25Index`` / ``rag_context``: the corpus cut into ~``chunk_words`` word chunks,
  ranked with BM25 (rank-bm25) against the question; the top chunks that fit the
  budget go into the prompt.

Tokens are estimated as characters / 4 so the budgets do not depend on a tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tether.tools.fs.corpus import INDEX

CHARS_PER_TOKEN = 4
_WORD = re.compile(r"\w+")
_STOP = frozenset(
    _WORD.findall(
        "a an and are as at be by did do does for from how in is it many of on or the to was what where which who "
        "with answer only number name city code total"
    )
)


def est_tokens(text: str) -> int:
    """Estimated token count of ``text`` (characters / 4)."""
    return len(text) // CHARS_PER_TOKEN


def iter_corpus_files(corpus: Path) -> Iterator[tuple[str, Path]]:
    """(relative path, file) for every document of a corpus, in ``_index.tsv`` order when there is one."""
    index = corpus / INDEX
    if index.is_file():
        with open(index, encoding="utf-8") as fh:
            next(fh, None)
            for line in fh:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 2:
                    yield parts[1], corpus / parts[1]
        return
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and not p.is_symlink()):
        yield path.relative_to(corpus).as_posix(), path


def full_context(corpus: Path, budget_tokens: int) -> tuple[str, int]:
    """As many whole documents as fit in ``budget_tokens``: (text, documents included)."""
    parts: list[str] = []
    used = 0
    for rel, path in iter_corpus_files(corpus):
        block = f"=== /corpus/{rel} ===\n{path.read_text(encoding='utf-8', errors='replace').strip()}\n"
        cost = est_tokens(block)
        if used + cost > budget_tokens:
            if not parts:  # at least part of the first document
                parts.append(block[: budget_tokens * CHARS_PER_TOKEN])
            break
        parts.append(block)
        used += cost
    return "\n".join(parts), len(parts)


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens without stop words."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


@dataclass
class Chunk:
    """One retrievable piece of a document."""

    path: str
    start_line: int
    text: str


class Bm25Index:
    """BM25 over fixed-size word chunks of a corpus."""

    def __init__(self, corpus: Path, chunk_words: int = 150) -> None:
        from rank_bm25 import BM25Okapi

        self.chunks: list[Chunk] = []
        tokens: list[list[str]] = []
        for rel, path in iter_corpus_files(corpus):
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            buf: list[str] = []
            words = 0
            start = 1
            for n, line in enumerate(lines, 1):
                if not buf:
                    start = n
                buf.append(line)
                words += len(line.split())
                if words >= chunk_words:
                    self._add(rel, start, buf, tokens)
                    buf, words = [], 0
            if buf and "".join(buf).strip():
                self._add(rel, start, buf, tokens)
        if not self.chunks:
            raise ValueError(f"corpus {corpus} holds no text")
        self.bm25 = BM25Okapi(tokens)

    def _add(self, rel: str, start: int, lines: list[str], tokens: list[list[str]]) -> None:
        text = "\n".join(lines).strip()
        if text:
            self.chunks.append(Chunk(path=rel, start_line=start, text=text))
            tokens.append(tokenize(text))

    def search(self, query: str, k: int) -> list[Chunk]:
        """The ``k`` best chunks for ``query``."""
        scores = self.bm25.get_scores(tokenize(query))
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
        return [self.chunks[i] for i in order]


def rag_context(index: Bm25Index, question: str, budget_tokens: int, top_k: int = 8) -> tuple[str, int]:
    """The top-``top_k`` BM25 chunks for ``question`` that fit ``budget_tokens``: (text, chunks included)."""
    parts: list[str] = []
    used = 0
    for chunk in index.search(question, top_k):
        block = f"=== /corpus/{chunk.path} (from line {chunk.start_line}) ===\n{chunk.text}\n"
        if used + est_tokens(block) > budget_tokens:
            break
        parts.append(block)
        used += est_tokens(block)
    return "\n".join(parts), len(parts)
