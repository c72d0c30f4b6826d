"""Corpus layout: JSONL (streamed), folders and long texts become one-file-per-document trees."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.errors import UserError
from tether.tools.fs.corpus import Document, build_corpus, load_manifest, write_corpus


def _entries_per_folder(root: Path) -> int:
    return max(len(os.listdir(d)) for d, _, _ in os.walk(root))


def _write_jsonl(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            meta = {
                "source": "Wiki News" if i % 2 else "Blog",
                "date": f"202{i % 3}-0{1 + i % 2}-15",
                "title": f"T {i}",
            }
            fh.write(json.dumps({"id": f"doc{i}", "text": f"body of document {i}\nsecond line", "metadata": meta}))
            fh.write("\n")


def test_jsonl_layout_meaningful_paths_and_manifest(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    _write_jsonl(src, 60)
    manifest = build_corpus(src, tmp_path / "c")
    assert manifest.documents == 60 and manifest.source_kind == "jsonl"
    assert load_manifest(tmp_path / "c").documents == 60
    index = (tmp_path / "c" / "_index.tsv").read_text().splitlines()[1:]
    assert len(index) == 60
    doc_id, rel, title = index[1].split("\t")
    assert (doc_id, title) == ("doc1", "T 1")
    assert rel == "docs/wiki-news/2021/02/0000/t-1__doc1.txt"
    text = (tmp_path / "c" / rel).read_text()
    assert text.startswith("id: doc1\ntitle: T 1\nsource: Wiki News\ndate: 2021-02-15\n\nbody of document 1\n")
    files = [p for p in (tmp_path / "c" / "docs").rglob("*.txt")]
    assert len(files) == 60


def test_sharding_caps_entries_per_folder(tmp_path: Path) -> None:
    docs = (Document(id=str(i), text=f"text {i}") for i in range(250))
    manifest = write_corpus(docs, tmp_path / "c", source="gen", source_kind="generated", max_entries=10)
    assert manifest.documents == 250
    assert _entries_per_folder(tmp_path / "c" / "docs") <= 10
    assert len(list((tmp_path / "c" / "docs").rglob("*.txt"))) == 250


def test_many_sources_spill_without_breaking_the_cap(tmp_path: Path) -> None:
    docs = (Document(id=str(i), text="x", metadata={"source": f"src{i}"}) for i in range(60))
    write_corpus(docs, tmp_path / "c", source="gen", source_kind="generated", max_entries=10)
    assert _entries_per_folder(tmp_path / "c" / "docs") <= 10
    assert len(list((tmp_path / "c" / "docs").rglob("*.txt"))) == 60


def test_build_streams_documents(tmp_path: Path) -> None:
    """Each document is on disk before the next one is produced (nothing is held back)."""
    out = tmp_path / "c"
    seen_on_disk: list[int] = []

    def produce() -> Iterator[Document]:
        for i in range(30):
            if i:
                building = next(tmp_path.glob(".c.building-*"))
                seen_on_disk.append(len(list(building.rglob("*.txt"))))
            yield Document(id=str(i), text=f"t{i}")

    write_corpus(produce(), out, source="gen", source_kind="generated")
    assert seen_on_disk == list(range(1, 30))


def test_bad_jsonl_line_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"id": 1, "text": "ok"}\n{not json}\n')
    with pytest.raises(UserError, match="Line 2"):
        build_corpus(src, tmp_path / "c")
    assert not (tmp_path / "c").exists()
    assert not list(tmp_path.glob(".c.*"))


def test_existing_output_refused_unless_forced(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    _write_jsonl(src, 3)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep").write_text("x")
    with pytest.raises(UserError, match="--force"):
        build_corpus(src, tmp_path / "c")
    assert build_corpus(src, tmp_path / "c", force=True).documents == 3
    assert not (tmp_path / "c" / "keep").exists()


def test_folder_source_skips_symlinks_and_binaries(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "one.txt").write_text("first")
    (src / "a" / "b" / "two.md").write_text("second")
    (src / "bin.dat").write_bytes(b"\x00\x01\x02")
    (src / "link.txt").symlink_to("/etc/hostname")
    manifest = build_corpus(src, tmp_path / "c")
    assert manifest.documents == 2
    assert manifest.skipped == {"binary": 1, "symlinks": 1}
    texts = sorted(p.read_text().split("\n\n", 1)[1] for p in (tmp_path / "c" / "docs").rglob("*.*"))
    assert texts == ["first\n", "second\n"]
    assert not any(p.is_symlink() for p in (tmp_path / "c").rglob("*"))


def test_long_text_split_at_headings_then_paragraphs(tmp_path: Path) -> None:
    src = tmp_path / "book.txt"
    para = "word " * 40 + "\n\n"
    src.write_text("Preface text.\n\nChapter 1: Start\n" + para * 3 + "Chapter 2: Middle\n" + para * 30)
    manifest = build_corpus(src, tmp_path / "c", max_section_chars=1000)
    assert manifest.source_kind == "text" and manifest.split["mode"] == "headings, then paragraphs"
    index = [line.split("\t") for line in (tmp_path / "c" / "_index.tsv").read_text().splitlines()[1:]]
    titles = [row[2] for row in index]
    assert titles[0] == "section 1"
    assert titles[1] == "Chapter 1: Start"
    assert titles[2] == "Chapter 2: Middle" and titles[3] == "Chapter 2: Middle (part 2)"
    bodies = [(tmp_path / "c" / row[1]).read_text().split("\n\n", 1)[1] for row in index]
    assert all(len(b) <= 1100 for b in bodies)
    assert "".join(bodies).count("word") == 33 * 40  # nothing lost, nothing duplicated
    assert bodies[3].startswith("word")  # cut at a paragraph break, not mid-paragraph


def test_missing_source_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        build_corpus(tmp_path / "nope.jsonl", tmp_path / "c")


def test_cli_build_prints_summary_and_refuses_bad_input(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tether.tools.fs.cli import corpus_app

    src = tmp_path / "d.jsonl"
    _write_jsonl(src, 5)
    runner = CliRunner()
    ok = runner.invoke(corpus_app, ["build", str(src), "--out", str(tmp_path / "c"), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["documents"] == 5
    again = runner.invoke(corpus_app, ["build", str(src), "--out", str(tmp_path / "c")])
    assert again.exit_code == 2 and "--force" in again.output and "Traceback" not in again.output


def test_form_feeds_start_sections(tmp_path: Path) -> None:
    src = tmp_path / "pages.txt"
    src.write_text("intro\n\fpage two\nmore\n\fpage three\n")
    build_corpus(src, tmp_path / "c")
    rows = [line.split("\t") for line in (tmp_path / "c" / "_index.tsv").read_text().splitlines()[1:]]
    bodies = [(tmp_path / "c" / r[1]).read_text().split("\n\n", 1)[1] for r in rows]
    assert bodies == ["intro\n", "page two\nmore\n", "page three\n"]
