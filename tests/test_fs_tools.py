"""The fs tool set in a real bwrap sandbox: outputs, caps, path escapes, named sessions."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tether.errors import ToolError, UserError
from tether.sandbox.bwrap import bwrap_available
from tether.tools.fs.cli import call_tool
from tether.tools.fs.corpus import build_corpus
from tether.tools.fs.tools import FsToolSet, check_path
from tether.types import ToolCall

needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot run here")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temp folder other users can traverse: the sandbox reads the corpus as its own user."""
    path = Path(tempfile.mkdtemp(prefix="tether-fs-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def corpus(shared_tmp: Path) -> Path:
    tmp_path = shared_tmp
    src = tmp_path / "src.jsonl"
    with open(src, "w") as fh:
        for i in range(120):
            text = "\n".join(f"line {n} of doc {i}" for n in range(1, 31))
            if i == 77:
                text += "\nThe secret word is PELICAN."
            meta = {"source": "notes", "date": f"2024-0{1 + i % 3}-01", "title": f"Note {i}"}
            fh.write(json.dumps({"id": f"n{i}", "text": text, "metadata": meta}) + "\n")
    out = tmp_path / "corpus"
    build_corpus(src, out)
    (tmp_path / "host_secret.txt").write_text("HOSTSECRET\n")
    (out / "docs" / "evil_abs").symlink_to(tmp_path / "host_secret.txt")
    (out / "docs" / "evil_etc").symlink_to("/etc/hostname")
    (out / "docs" / "evil_dir").symlink_to(tmp_path)
    (out / "docs" / "evil_rel").symlink_to("../../host_secret.txt")
    return out


@pytest.fixture
async def fs(corpus: Path) -> AsyncIterator[FsToolSet]:
    async with FsToolSet(corpus=corpus) as ts:
        yield ts


async def call(ts: FsToolSet, name: str, **args: object) -> tuple[str, bool]:
    result = await ts.call(ToolCall(name=name, arguments=args))
    return result.content, result.is_error


def test_check_path_is_lexical_and_strict() -> None:
    assert check_path("docs/a.txt") == "/corpus/docs/a.txt"
    assert check_path("/work/x/../y") == "/work/y"
    assert check_path("") == "/corpus"
    for bad in ("../etc/passwd", "/etc/passwd", "/corpus/../etc", "/corpusx", "~/x", "/work/../../root", "a\x00b"):
        with pytest.raises(ToolError):
            check_path(bad)


@needs_bwrap
async def test_navigation_tools(fs: FsToolSet) -> None:
    out, err = await call(fs, "ls", path="/corpus")
    assert not err and "docs/" in out and "manifest.json" in out
    out, _ = await call(fs, "ls", path="docs/notes/2024")
    assert out.splitlines()[1:] == ["01/", "02/", "03/"]
    out, _ = await call(fs, "tree", path="/corpus/docs", depth=4)
    assert "notes/" in out and out.count("0000/  (40 files)") == 3 and ".txt" not in out
    out, _ = await call(fs, "tree", path="/corpus/docs", depth=5)
    assert out.count("… 30 more files") == 3 and out.count(".txt") == 30
    out, _ = await call(fs, "find", name_glob="note-77__*")
    assert out.splitlines() == ["1 paths match 'note-77__*'", "/corpus/docs/notes/2024/03/0000/note-77__n77.txt"]
    out, _ = await call(fs, "grep", pattern="secret word is (\\w+)")
    assert out.splitlines() == [
        "1 matching lines in 1 files",
        "/corpus/docs/notes/2024/03/0000/note-77__n77.txt:36:The secret word is PELICAN.",
    ]
    out, _ = await call(fs, "grep", pattern="SECRET WORD", ignore_case=True, context=1)
    assert out.splitlines()[1:] == [
        "/corpus/docs/notes/2024/03/0000/note-77__n77.txt-35-line 30 of doc 77",
        "/corpus/docs/notes/2024/03/0000/note-77__n77.txt:36:The secret word is PELICAN.",
    ]
    out, _ = await call(fs, "read", path="docs/notes/2024/03/0000/note-77__n77.txt", start_line=35, n_lines=5)
    assert out.splitlines() == [
        "/corpus/docs/notes/2024/03/0000/note-77__n77.txt  lines 35-36 of 36",
        "    35\tline 30 of doc 77",
        "    36\tThe secret word is PELICAN.",
    ]
    out, _ = await call(fs, "wc", path="docs/notes/2024/03/0000/note-77__n77.txt")
    assert out.startswith("/corpus/docs/notes/2024/03/0000/note-77__n77.txt: 36 lines, ")
    out, _ = await call(fs, "wc", path="/corpus/docs")
    assert out.startswith("/corpus/docs/: 120 files, 4201 lines")


@needs_bwrap
async def test_outputs_are_capped_with_a_way_to_see_more(fs: FsToolSet) -> None:
    out, _ = await call(fs, "grep", pattern="line 1 of", max_results=5)
    assert out.startswith("showing the first 5 matching lines") and len(out.splitlines()) == 7
    assert "raise max_results" in out
    rel = "docs/notes/2024/01/0000/note-0__n0.txt"
    out, _ = await call(fs, "read", path=rel, n_lines=10)
    assert out.splitlines()[0].endswith("lines 1-10 of 35") and "start_line=11" in out
    out, _ = await call(fs, "ls", path="docs/notes/2024/01/0000", max_entries=3)
    assert "37 more entries not shown" in out
    small = FsToolSet(fs.sandbox, max_chars=500)
    out, _ = await call(small, "grep", pattern="line", max_results=500)
    assert len(out) < 700 and "[output cut at" in out


@needs_bwrap
async def test_model_mistakes_are_tool_errors(fs: FsToolSet) -> None:
    out, err = await call(fs, "grep", pattern="(unclosed")
    assert err and "invalid pattern" in out
    out, err = await call(fs, "read", path="docs/nope.txt")
    assert err and "no such file" in out
    out, err = await call(fs, "read", path="docs")
    assert err and "is a folder" in out
    out, err = await call(fs, "read", path="docs/notes/2024/01/0000/note-0__n0.txt", start_line=999)
    assert err and "only 35 lines" in out
    out, err = await call(fs, "grep", path="/corpus", patern="x")
    assert err and "unknown argument 'patern'" in out


ESCAPES = [
    ("read", {"path": "../host_secret.txt"}),
    ("read", {"path": "/etc/hostname"}),
    ("read", {"path": "/corpus/../etc/hostname"}),
    ("read", {"path": "docs/evil_abs"}),
    ("read", {"path": "docs/evil_rel"}),
    ("read", {"path": "docs/evil_etc"}),
    ("ls", {"path": "docs/evil_dir"}),
    ("tree", {"path": "docs/evil_dir"}),
    ("grep", {"pattern": "HOSTSECRET", "path": "docs/evil_dir"}),
    ("find", {"path": "docs/evil_dir", "name_glob": "*"}),
    ("wc", {"path": "docs/evil_abs"}),
    ("wc", {"path": "/"}),
    ("ls", {"path": "/work/../corpus/../tmp"}),
]


@needs_bwrap
async def test_path_escapes_are_refused(fs: FsToolSet) -> None:
    for tool, args in ESCAPES:
        out, err = await call(fs, tool, **args)
        assert err, (tool, args, out)
        assert "outside /corpus and /work" in out, (tool, args, out)
        assert "HOSTSECRET" not in out


@needs_bwrap
async def test_planted_symlinks_are_not_followed_by_searches(fs: FsToolSet) -> None:
    out, err = await call(fs, "grep", pattern="HOSTSECRET")
    assert not err and out.startswith("no matches")
    out, _ = await call(fs, "ls", path="docs")
    assert "evil_abs@  (symlink, not followed)" in out
    out, _ = await call(fs, "shell", command="cat /corpus/docs/evil_abs /corpus/docs/evil_rel; echo rc=$?")
    assert "HOSTSECRET" not in out and "rc=1" in out


@needs_bwrap
async def test_work_is_writable_and_corpus_read_only(fs: FsToolSet) -> None:
    out, _ = await call(fs, "shell", command="echo hello > /work/n.txt && touch /corpus/x; echo rc=$?")
    assert "rc=1" in out and "Read-only" in out
    out, err = await call(fs, "read", path="/work/n.txt")
    assert not err and out.endswith("1\thello")
    out, _ = await call(fs, "python", code="import os; print(sorted(os.listdir('/corpus')))")
    assert out == "['_index.tsv', 'docs', 'manifest.json']"


@needs_bwrap
async def test_named_session_keeps_work_across_calls(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = await call_tool("shell", {"command": "echo kept > /work/k.txt"}, corpus=corpus, session="s1")
    assert not first["is_error"]
    again = await call_tool("read", {"path": "/work/k.txt"}, corpus=corpus, session="s1")
    assert again["content"].endswith("1\tkept")
    other = await call_tool("read", {"path": "/work/k.txt"}, corpus=corpus, session="s2")
    assert other["is_error"]
    fresh = await call_tool("read", {"path": "/work/k.txt"}, corpus=corpus)
    assert fresh["is_error"]
    with pytest.raises(UserError):
        await call_tool("read", {"path": "x"}, corpus=corpus, session="../up")
    with pytest.raises(UserError):
        await call_tool("nosuchtool", {}, corpus=corpus)
    with pytest.raises(UserError):
        await call_tool("ls", {}, corpus=tmp_path / "missing")
