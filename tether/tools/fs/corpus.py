"""Corpus layout: documents -> a directory tree with one file per document.

``build_corpus(source, out)`` reads a JSONL file (``id``/``text``/``metadata`` per line),
a folder of text files, or a single long text file (split at natural boundaries:
headings, then paragraphs) and writes::

    OUT/
      manifest.json            counts, sizes, how it was split, the layout
      _index.tsv               id <TAB> path <TAB> title, one line per document
      docs/<source>/<yyyy>/<mm>/<shard>/<title-slug>__<id>.txt

Path parts come from metadata where it exists (``source``, ``date``, ``title``); every
folder holds at most ``max_entries`` (default 1,000) entries: documents are placed in
numbered shard folders and an over-full level spills into a ``_more`` folder. Each
file starts with a short header (``id:``, ``title:``, ``source:``, ``date:``), a blank
line, then the text. Input is streamed (one document in memory at a time) and the tree
is built in a temporary folder that is renamed into place only when it is complete, so
bad input leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tether.errors import UserError

MANIFEST = "manifest.json"
INDEX = "_index.tsv"
DOCS = "docs"
MAX_ENTRIES = 1000
TEXT_FIELDS = ("text", "contents", "content", "body")
META_FIELDS = ("title", "source", "date", "url", "author")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?")
_HEADING = re.compile(r"^(#{1,6}\s+\S.*|(?:chapter|part|book|section)\s+[\w.:-]+.*|[IVXLC]+\.\s*\S.*)$", re.IGNORECASE)


@dataclass
class Document:
    """One document to lay out: an id, its text and optional metadata."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class Manifest(BaseModel):
    """What a built corpus holds and how it was made (``manifest.json``)."""

    version: int = 1
    source: str
    source_kind: str
    documents: int = 0
    bytes: int = 0
    chars: int = 0
    est_tokens: int = 0
    folders: int = 0
    max_entries_per_folder: int = MAX_ENTRIES
    layout: str = "docs/<source>/<yyyy>/<mm>/<shard>/<title-slug>__<id>.txt"
    split: dict[str, Any] = Field(default_factory=dict)
    skipped: dict[str, int] = Field(default_factory=dict)
    build_seconds: float = 0.0
    extra: dict[str, Any] = Field(default_factory=dict)


def slugify(text: str, max_len: int = 60) -> str:
    """A lowercase ascii slug of ``text`` ('' when nothing is left)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-")


def _safe_id(raw: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.")
    return safe[:80] or "doc"


class _Allocator:
    """Maps logical folders to physical ones so no folder holds more than ``limit`` entries."""

    def __init__(self, root: Path, limit: int) -> None:
        self.root = root
        self.limit = limit
        self.children: dict[Path, dict[str, Path]] = {}
        self.counts: dict[Path, int] = {}
        self.shard_fill: dict[Path, tuple[int, int]] = {}  # logical leaf -> (shard no, files in it)
        self.folders = 0

    def _child(self, parent: Path, name: str) -> Path:
        known = self.children.setdefault(parent, {})
        if name in known:
            return known[name]
        host = parent
        while self.counts.get(host, 0) >= self.limit - 1:
            # the level is full: its last slot is a spill folder, one level down
            spill = host / "_more"
            if not spill.exists():
                spill.mkdir()
                self.folders += 1
                self.counts[host] = self.counts.get(host, 0) + 1
            host = spill
        path = host / name
        path.mkdir()
        self.folders += 1
        self.counts[host] = self.counts.get(host, 0) + 1
        known[name] = path
        return path

    def folder_for(self, parts: list[str]) -> Path:
        """The physical folder for a document whose logical folder is ``parts``."""
        logical = self.root
        for part in parts:
            logical = self._child(logical, part)
        shard, filled = self.shard_fill.get(logical, (0, 0))
        if filled >= self.limit:
            shard, filled = shard + 1, 0
        self.shard_fill[logical] = (shard, filled + 1)
        return self._child(logical, f"{shard:04d}")


def _meta_parts(meta: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    source = meta.get("source")
    if isinstance(source, str) and slugify(source):
        parts.append(slugify(source, 40))
    date = meta.get("date")
    if isinstance(date, str | int):
        m = _DATE.match(str(date))
        if m:
            parts.append(m.group(1))
            if m.group(2):
                parts.append(m.group(2))
        else:
            parts.append("undated")
    elif source is not None:
        parts.append("undated")
    return parts


def _header(doc: Document) -> str:
    lines = [f"id: {doc.id}"]
    for key in ("title", "source", "date", "url", "author"):
        value = doc.metadata.get(key)
        if isinstance(value, str | int | float) and str(value).strip():
            lines.append(f"{key}: {' '.join(str(value).split())}")
    return "\n".join(lines) + "\n\n"


ProgressFn = Callable[[int, int], None]


def write_corpus(
    docs: Iterable[Document],
    out: Path | str,
    *,
    source: str,
    source_kind: str,
    split: dict[str, Any] | None = None,
    max_entries: int = MAX_ENTRIES,
    force: bool = False,
    progress: ProgressFn | None = None,
    extra: dict[str, Any] | None = None,
) -> Manifest:
    """Lay ``docs`` out under ``out`` (built in a temp folder, renamed when complete).

    ``progress(documents, bytes)`` is called every 1,000 documents. Raises ``UserError``
    when ``out`` exists and is not empty (unless ``force``), or when a document is bad.
    """
    if max_entries < 10:
        raise UserError("max_entries must be at least 10.")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UserError(f"Output folder {str(out)!r} already exists and is not empty; pass --force to replace it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    start = time.perf_counter()
    manifest = Manifest(source=source, source_kind=source_kind, split=split or {}, max_entries_per_folder=max_entries)
    try:
        alloc = _Allocator(tmp / DOCS, max_entries)
        (tmp / DOCS).mkdir()
        seen_names: dict[Path, set[str]] = {}
        with open(tmp / INDEX, "w", encoding="utf-8") as index:
            index.write("id\tpath\ttitle\n")
            for doc in docs:
                folder = alloc.folder_for(_meta_parts(doc.metadata))
                title = doc.metadata.get("title")
                slug = slugify(title) if isinstance(title, str) else ""
                sid = _safe_id(doc.id)
                name = f"{slug}__{sid}.txt" if slug and slug != sid.lower() else f"{sid}.txt"
                names = seen_names.setdefault(folder, set())
                base, n = name, 1
                while name in names:
                    n += 1
                    name = base[:-4] + f"-{n}.txt"
                names.add(name)
                body = _header(doc) + doc.text.rstrip("\n") + "\n"
                data = body.encode("utf-8")
                (folder / name).write_bytes(data)
                rel = (folder / name).relative_to(tmp).as_posix()
                clean_title = " ".join(str(title).split()) if isinstance(title, str) else ""
                index.write(f"{doc.id.replace(chr(9), ' ')}\t{rel}\t{clean_title}\n")
                manifest.documents += 1
                manifest.bytes += len(data)
                manifest.chars += len(doc.text)
                if progress and manifest.documents % 1000 == 0:
                    progress(manifest.documents, manifest.bytes)
        if len(seen_names) == 0 and manifest.documents == 0:
            raise UserError(f"Source {source!r} holds no documents.")
        manifest.folders = alloc.folders + 1
        manifest.est_tokens = manifest.chars // 4
        manifest.extra = extra or {}
        manifest.build_seconds = round(time.perf_counter() - start, 3)
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
        if progress:
            progress(manifest.documents, manifest.bytes)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


# ----- sources -----


def iter_jsonl(path: Path, skipped: dict[str, int]) -> Iterator[Document]:
    """Stream documents from a JSONL file; a bad line raises ``UserError`` naming it."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"Line {n} of {path} is not valid JSON ({exc.msg}).") from None
            if not isinstance(obj, dict):
                raise UserError(f"Line {n} of {path} must be a JSON object with 'id' and 'text'.")
            text = next((obj[k] for k in TEXT_FIELDS if isinstance(obj.get(k), str)), None)
            if text is None:
                raise UserError(f"Line {n} of {path} has no 'text' string.")
            if not text.strip():
                skipped["empty"] = skipped.get("empty", 0) + 1
                continue
            raw_meta = obj.get("metadata")
            meta: dict[str, Any] = dict(raw_meta) if isinstance(raw_meta, dict) else {}
            for key in META_FIELDS:
                if key in obj and key not in meta:
                    meta[key] = obj[key]
            doc_id = obj.get("id", obj.get("docid", obj.get("_id", n)))
            yield Document(id=str(doc_id), text=text, metadata=meta)


def iter_folder(root: Path, skipped: dict[str, int]) -> Iterator[Document]:
    """Every text file under ``root`` (sorted, symlinks skipped) as one document."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        for fname in sorted(filenames):
            path = base / fname
            if path.is_symlink():
                skipped["symlinks"] = skipped.get("symlinks", 0) + 1
                continue
            raw = path.read_bytes()
            if b"\x00" in raw[:4096]:
                skipped["binary"] = skipped.get("binary", 0) + 1
                continue
            text = raw.decode("utf-8", errors="replace")
            if not text.strip():
                skipped["empty"] = skipped.get("empty", 0) + 1
                continue
            rel = path.relative_to(root)
            meta: dict[str, Any] = {"title": rel.stem}
            if len(rel.parts) > 1:
                meta["source"] = "-".join(rel.parts[:-1])
            yield Document(id=rel.with_suffix("").as_posix().replace("/", "-"), text=text, metadata=meta)


def iter_text_sections(path: Path, max_chars: int = 20_000) -> Iterator[Document]:
    """Split one long text at natural boundaries, streaming.

    A section starts at a heading (markdown ``#``, ``Chapter``/``Part``/``Section`` lines,
    roman numerals) or a form feed; a section longer than ``max_chars`` is cut at the
    last paragraph break (blank line) before the limit, or at a line break if a single
    paragraph is too long.
    """
    count = 0
    title = ""
    buf: list[str] = []
    size = 0
    part = 0

    def emit(text: str, heading: str, piece: int) -> Document:
        nonlocal count
        count += 1
        label = heading or f"section {count}"
        if piece > 0:
            label += f" (part {piece + 1})"
        return Document(id=f"{count:06d}", text=text, metadata={"title": label})

    def cut(lines: list[str]) -> tuple[list[str], list[str]]:
        total, last_para, last_line = 0, -1, -1
        for i, line in enumerate(lines):
            total += len(line)
            if total > max_chars:
                break
            last_line = i
            if not line.strip():
                last_para = i
        at = last_para if last_para > 0 else max(last_line, 0)
        return lines[: at + 1], lines[at + 1 :]

    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            for k, line in enumerate(raw.split("\f")):
                is_break = k > 0  # a form feed starts a new section
                if (_HEADING.match(line.strip()) or is_break) and "".join(buf).strip():
                    yield emit("".join(buf).strip("\n"), title, part)
                    buf, size, part = [], 0, 0
                if _HEADING.match(line.strip()):
                    title = line.strip().lstrip("#").strip()
                buf.append(line if line.endswith("\n") else line + "\n")
                size += len(line)
                while size > max_chars:
                    head, buf = cut(buf)
                    if "".join(head).strip():
                        yield emit("".join(head).strip("\n"), title, part)
                        part += 1
                    size = sum(len(x) for x in buf)
                    if not head:
                        break
    if "".join(buf).strip():
        yield emit("".join(buf).strip("\n"), title, part)


def detect_kind(source: Path) -> str:
    """``folder``, ``jsonl`` or ``text`` for a source path; ``UserError`` if it does not exist."""
    if not source.exists():
        raise UserError(f"Source {str(source)!r} does not exist.")
    if source.is_dir():
        return "folder"
    if source.suffix.lower() in (".jsonl", ".ndjson"):
        return "jsonl"
    return "text"


def build_corpus(
    source: Path | str,
    out: Path | str,
    *,
    kind: str | None = None,
    max_entries: int = MAX_ENTRIES,
    max_section_chars: int = 20_000,
    force: bool = False,
    progress: ProgressFn | None = None,
) -> Manifest:
    """Build a corpus tree at ``out`` from ``source`` (JSONL, folder of text files, or one long text).

    ``kind`` forces the source kind (``jsonl``/``folder``/``text``); by default it is
    detected from the path. Returns the written manifest.
    """
    src = Path(source)
    kind = kind or detect_kind(src)
    if not src.exists():
        raise UserError(f"Source {str(src)!r} does not exist.")
    out_path = Path(out)
    if out_path.resolve() == src.resolve() or src.resolve() in out_path.resolve().parents:
        raise UserError("The output folder must not be the source or lie inside it.")
    skipped: dict[str, int] = {}
    docs: Iterable[Document]
    split: dict[str, Any]
    if kind == "jsonl":
        docs, split = iter_jsonl(src, skipped), {"mode": "one document per JSONL line"}
    elif kind == "folder":
        if not src.is_dir():
            raise UserError(f"Source {str(src)!r} is not a folder.")
        docs, split = iter_folder(src, skipped), {"mode": "one document per file"}
    elif kind == "text":
        if not src.is_file():
            raise UserError(f"Source {str(src)!r} is not a file.")
        docs = iter_text_sections(src, max_section_chars)
        split = {"mode": "headings, then paragraphs", "max_section_chars": max_section_chars}
    else:
        raise UserError(f"Unknown source kind {kind!r}; use jsonl, folder or text.")
    manifest = write_corpus(
        docs,
        out_path,
        source=str(src),
        source_kind=kind,
        split=split,
        max_entries=max_entries,
        force=force,
        progress=progress,
    )
    if skipped:
        manifest.skipped = skipped
        (out_path / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return manifest


def load_manifest(corpus: Path | str) -> Manifest:
    """Read a corpus's manifest; ``UserError`` if ``corpus`` is not a built corpus."""
    path = Path(corpus) / MANIFEST
    if not path.is_file():
        raise UserError(f"{str(corpus)!r} is not a corpus folder (no {MANIFEST}); build it with `tether corpus build`.")
    return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
