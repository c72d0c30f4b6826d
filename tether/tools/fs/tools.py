"""The ``fs`` tool set: navigate a corpus mounted read-only at ``/corpus`` (and a writable ``/work``).

Every tool runs inside the episode's sandbox (``ls``/``tree``/``find`` use GNU find,
``grep`` is ripgrep, ``read`` and ``wc`` use awk/wc) and arguments are passed as argv,
never spliced into a shell line. Paths are checked twice: lexically (``..`` resolved,
relative paths taken from ``/corpus``) and inside the sandbox with ``realpath``, so a
symlink planted in the corpus cannot reach anything outside ``/corpus`` or ``/work``.
Outputs are capped for the model with a note on how to see more.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from tether.errors import ToolError
from tether.sandbox.base import ExecResult, Sandbox
from tether.tools.base import Tool, ToolSet, tool
from tether.tools.fs.sandbox import CORPUS_ROOT, WORK_ROOT, open_fs_sandbox, save_workspace

ROOTS = (CORPUS_ROOT, WORK_ROOT)
MAX_CHARS = 8000
MAX_LINE = 400
_ESCAPE, _MISSING, _NOTFILE = 98, 97, 96
MS, CS = "\x1f", "\x1e"  # rg field separators for match / context lines

# $1 is the path: resolve it in the sandbox, refuse escapes, then run "$@" (after shift).
_GUARD = (
    'p=$(realpath -m -- "$1") || exit 97; '
    'case "$p" in /corpus|/corpus/*|/work|/work/*) ;; *) exit 98;; esac; '
    '[ -e "$p" ] || exit 97; shift; '
)

FS_INSTRUCTIONS = """\
The documents are files under /corpus (read-only), one document per file; /work is a writable scratch folder.
Start with ls("/corpus") or tree("/corpus", 2); /corpus/manifest.json says how the corpus was built and
/corpus/_index.tsv lists every document's id, path and title. Use grep to find where words occur, read to see
numbered lines of a file, and shell/python for anything else (rg, sed -n, nl, find, wc, sort, uniq, small scripts).
Outputs are capped; each tool says how to see more."""


def check_path(path: str) -> str:
    """Normalise a model-given path; ``ToolError`` unless it stays under ``/corpus`` or ``/work``.

    Relative paths are taken from ``/corpus``; ``..`` is resolved before the check.
    """
    raw = (path or "").strip()
    if "\x00" in raw:
        raise ToolError("paths cannot contain NUL characters.")
    if not raw:
        raw = CORPUS_ROOT
    if raw.startswith("~"):
        raise ToolError(f"path {path!r} is not allowed: use paths under /corpus or /work.")
    full = raw if raw.startswith("/") else posixpath.join(CORPUS_ROOT, raw)
    norm = posixpath.normpath(full)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if not any(norm == r or norm.startswith(r + "/") for r in ROOTS):
        raise ToolError(f"path {path!r} is outside /corpus and /work; only paths under those two folders are allowed.")
    return norm


def cap_text(text: str, max_chars: int, hint: str) -> str:
    """``text`` cut at a line break before ``max_chars`` with a note naming ``hint``."""
    if len(text) <= max_chars:
        return text
    cut = text.rfind("\n", 0, max_chars)
    cut = cut if cut > max_chars // 2 else max_chars
    return text[:cut].rstrip("\n") + f"\n[output cut at {cut} of {len(text)} characters; {hint}]"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return f"{n} B"


class FsToolSet(ToolSet):
    """Corpus navigation tools running in a sandbox.

    Pass a started ``sandbox`` that already has the corpus at ``/corpus``, or a host
    ``corpus`` folder (and optionally a host ``work_dir`` for ``/work``) and the tool set
    starts its own sandbox on ``async with`` and closes it on exit.
    """

    name = "fs"
    instructions = FS_INSTRUCTIONS

    def __init__(
        self,
        sandbox: Sandbox | None = None,
        *,
        corpus: Path | str | None = None,
        work_dir: Path | str | None = None,
        max_chars: int = MAX_CHARS,
        timeout_s: float = 60.0,
        extra_tools: list[Tool] | None = None,
    ) -> None:
        super().__init__(extra_tools=extra_tools)
        if sandbox is None and corpus is None:
            raise ValueError("FsToolSet needs a sandbox or a corpus folder")
        self._sandbox = sandbox
        self._owns_sandbox = sandbox is None
        self.corpus = Path(corpus) if corpus is not None else None
        self.work_dir = work_dir
        self.max_chars = max_chars
        self.timeout_s = timeout_s

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox the tools run in (started by ``async with`` when the set owns it)."""
        if self._sandbox is None:
            raise ToolError("the fs tools are not started (use the tool set with `async with`).")
        return self._sandbox

    async def __aenter__(self) -> FsToolSet:
        if self._sandbox is None:
            self._sandbox = await open_fs_sandbox(self.corpus, work_dir=self.work_dir)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._owns_sandbox and self._sandbox is not None:
            try:
                if self.work_dir is not None:
                    await save_workspace(self._sandbox, self.work_dir)
            finally:
                await self._sandbox.close()
                self._sandbox = None

    # ----- running commands -----

    async def _run(self, path: str, argv: list[str], script: str = '"$@"', *, allow: tuple[int, ...] = (0,)) -> str:
        """Run ``script`` (with ``$p`` the checked path and ``$@`` = ``argv``) for a model-given ``path``."""
        norm = check_path(path)
        res = await self.sandbox.exec(
            ["sh", "-c", _GUARD + script, "sh", norm, *argv], cwd=CORPUS_ROOT, timeout=self.timeout_s
        )
        self._raise_for(res, path, norm, allow)
        return res.stdout

    def _raise_for(self, res: ExecResult, path: str, norm: str, allow: tuple[int, ...]) -> None:
        if res.timed_out:
            raise ToolError(f"the command timed out after {self.timeout_s:.0f}s; narrow the path or the pattern.")
        if res.exit_code == _ESCAPE:
            raise ToolError(f"path {path!r} resolves outside /corpus and /work (through a symlink); it is not allowed.")
        if res.exit_code == _MISSING:
            raise ToolError(f"no such file or folder: {norm}. Use ls or find to see what exists.")
        if res.exit_code == _NOTFILE:
            raise ToolError(f"{norm} is a folder, not a file; use ls({norm!r}) or tree to look inside it.")
        if res.exit_code not in allow:
            detail = (res.stderr.strip() or res.stdout.strip()).splitlines()
            raise ToolError(f"command failed (exit {res.exit_code}): {detail[0][:300] if detail else 'no output'}")

    # ----- tools -----

    @tool
    async def ls(self, path: str = CORPUS_ROOT, max_entries: int = 200) -> str:
        """List a folder: sub-folders end with '/', files show their size, symlinks end with '@'.

        Args:
            path: folder (or file) under /corpus or /work; relative paths start at /corpus
            max_entries: how many entries to show at most (sorted by name)
        """
        max_entries = max(1, min(max_entries, 2000))
        out = await self._run(
            path,
            [],
            'if [ -d "$p" ]; then find "$p" -mindepth 1 -maxdepth 1 -printf \'%y\\t%s\\t%f\\n\' '
            '| LC_ALL=C sort -t "$(printf \'\\t\')" -k3,3; else printf \'__FILE__\\t%s\\n\' "$(stat -c %s "$p")"; fi',
        )
        norm = check_path(path)
        if out.startswith("__FILE__\t"):
            return f"{norm}  (file, {_size(int(out.split()[1]))}); use read to see it"
        rows = [line.split("\t", 2) for line in out.splitlines() if line.count("\t") >= 2]
        if not rows:
            return f"{norm}/ is empty."
        dirs = sum(1 for r in rows if r[0] == "d")
        files = len(rows) - dirs
        lines = [f"{norm}/: {dirs} folders, {files} files"]
        for kind, size, name in rows[:max_entries]:
            if kind == "d":
                lines.append(f"{name}/")
            elif kind == "l":
                lines.append(f"{name}@  (symlink, not followed)")
            else:
                lines.append(f"{name}  ({_size(int(size))})")
        if len(rows) > max_entries:
            lines.append(
                f"[{len(rows) - max_entries} more entries not shown; raise max_entries, or use "
                f"find({norm!r}, name_glob) to filter]"
            )
        return cap_text("\n".join(lines), self.max_chars, "raise max_entries less, or use find to filter")

    @tool
    async def tree(self, path: str = CORPUS_ROOT, depth: int = 2) -> str:
        """Show the folder tree under a path down to a depth, with file counts per folder.

        Folders with many files show only the first 10 names and a count.

        Args:
            path: folder under /corpus or /work
            depth: how many levels to descend (1 = like ls)
        """
        depth = max(1, min(depth, 8))
        # list entries down to depth + 1 so the deepest folders shown still get file counts
        awk = (
            'BEGIN{FS="\\t"} { n=split($3,a,"/"); par=(n>1)?substr($3,1,length($3)-length(a[n])-1):""; '
            'if ($1=="d") { if ($2<=D) print "d\\t" $3 } '
            'else { c[par]++; if ($2<=D && c[par]<=10) print $1 "\\t" $3 } } '
            'END { for (k in c) print "c\\t" k "\\t" c[k] }'
        )
        out = await self._run(
            path,
            [str(depth), awk],
            'find "$p" -mindepth 1 -maxdepth $(($1 + 1)) -printf \'%y\\t%d\\t%P\\n\' | awk -v D="$1" "$2"',
        )
        norm = check_path(path)
        counts: dict[str, int] = {}
        entries: list[tuple[str, str]] = []
        for line in out.splitlines():
            parts = line.split("\t")
            if parts[0] == "c" and len(parts) == 3:
                counts[parts[1]] = int(parts[2])
            elif len(parts) == 2:
                entries.append((parts[0], parts[1]))
        if not entries:
            return f"{norm}/ (no entries; if it is a file use read)"
        entries.sort(key=lambda e: e[1].split("/"))
        lines = [f"{norm}/  ({counts.get('', 0)} files here)"]
        shown: dict[str, int] = {}
        for kind, rel in entries:
            parts = rel.split("/")
            indent = "  " * len(parts)
            parent = "/".join(parts[:-1])
            if kind == "d":
                n = counts.get(rel, 0)
                lines.append(f"{indent}{parts[-1]}/" + (f"  ({n} files)" if n else ""))
                continue
            lines.append(f"{indent}{parts[-1]}" + ("@" if kind == "l" else ""))
            shown[parent] = shown.get(parent, 0) + 1
            if shown[parent] == 10 and counts.get(parent, 0) > 10:
                lines.append(f"{indent}… {counts[parent] - 10} more files (ls or find to see them)")
        return cap_text("\n".join(lines), self.max_chars, "use a smaller depth, or tree/ls a sub-folder")

    @tool
    async def find(self, path: str = CORPUS_ROOT, name_glob: str = "*", max_results: int = 100) -> str:
        """Find files and folders whose name matches a glob (e.g. '*2021*', 'report-*.txt'), case-insensitive.

        Args:
            path: folder to search under /corpus or /work
            name_glob: shell glob matched against the file or folder name (not the whole path)
            max_results: how many paths to show at most
        """
        max_results = max(1, min(max_results, 1000))
        awk = f'NR<={max_results} {{print}} END {{print "__TOTAL__\\t" NR}}'
        out = await self._run(
            path,
            [name_glob, awk],
            'find "$p" -mindepth 1 -iname "$1" -printf \'%y\\t%p\\n\' '
            '| LC_ALL=C sort -t "$(printf \'\\t\')" -k2,2 | awk "$2"',
        )
        total = 0
        lines = []
        for line in out.splitlines():
            kind, _, p = line.partition("\t")
            if kind == "__TOTAL__":
                total = int(p)
            else:
                lines.append(p + ("/" if kind == "d" else ""))
        if total == 0:
            return f"no names matching {name_glob!r} under {check_path(path)}."
        head = f"{total} paths match {name_glob!r}"
        if total > len(lines):
            head += f" (showing the first {len(lines)})"
        body = "\n".join([head, *lines])
        if total > len(lines):
            body += "\n[more matches exist; use a narrower glob or path, or raise max_results (max 1000)]"
        return cap_text(body, self.max_chars, "use a narrower glob or path")

    @tool
    async def grep(
        self,
        pattern: str,
        path: str = CORPUS_ROOT,
        ignore_case: bool = False,
        max_results: int = 50,
        context: int = 0,
    ) -> str:
        """Search file contents with a regular expression (ripgrep syntax); prints path:line:text for each match.

        Args:
            pattern: regular expression (use \\b for word boundaries, escape . ( ) etc. for literal text)
            path: file or folder to search under /corpus or /work
            ignore_case: match case-insensitively
            max_results: how many matching lines to show at most (max 500)
            context: lines of context to show before and after each match (max 10)
        """
        if not pattern:
            raise ToolError("pattern must not be empty.")
        max_results = max(1, min(max_results, 500))
        context = max(0, min(context, 10))
        flags = ["rg", "--no-config", "-uu", "--no-heading", "--with-filename", "--line-number", "--color", "never"]
        flags += ["--max-columns", str(MAX_LINE), "--max-columns-preview", "--field-match-separator", MS]
        flags += ["--field-context-separator", CS]
        if ignore_case:
            flags.append("-i")
        if context:
            flags += ["-C", str(context)]
        flags += ["-e", pattern]
        cap_lines = max_results * (2 * context + 2) + 2
        out = await self._run(path, [str(cap_lines), *flags], 'n="$1"; shift; "$@" -- "$p" | head -n "$n"', allow=(0,))
        # rg's own errors (bad regex) come back on stderr with exit 0 from head: check stdout is empty
        return await self._render_grep(out, pattern, path, max_results, context, cap_lines)

    async def _render_grep(
        self, out: str, pattern: str, path: str, max_results: int, context: int, cap_lines: int
    ) -> str:
        norm = check_path(path)
        raw = [line for line in out.split("\n") if line]  # not splitlines(): it splits at \x1e
        if not raw:
            probe = await self.sandbox.exec(["rg", "--no-config", "-q", "-e", pattern, "--", "/dev/null"])
            if probe.exit_code == 2:
                msg = " ".join(probe.stderr.split())[:300]
                raise ToolError(f"invalid pattern {pattern!r}: {msg}")
            return f"no matches for {pattern!r} under {norm}."
        blocks: list[tuple[str, list[str]]] = []
        matches = 0
        files: set[str] = set()
        more = len(raw) >= cap_lines
        for line in raw:
            if line == "--":
                if blocks:
                    blocks[-1][1].append("--")
                continue
            if MS in line:
                if matches >= max_results:
                    more = True
                    break
                p, ln, text = line.split(MS, 2)
                matches += 1
                files.add(p)
                rendered = f"{p}:{ln}:{text}"
            elif CS in line:
                p, ln, text = line.split(CS, 2)
                rendered = f"{p}-{ln}-{text}"
            else:
                continue
            if not blocks or blocks[-1][0] != p:
                blocks.append((p, []))
            blocks[-1][1].append(rendered)
        if not more:
            blocks.sort(key=lambda b: b[0])
        body_lines = [ln for _, bl in blocks for ln in bl if ln != "--" or context]
        if body_lines and body_lines[-1] == "--":
            body_lines.pop()
        if more:
            head = f"showing the first {matches} matching lines in {len(files)} files (more exist)"
            tail = (
                "\n[more matches not shown; narrow the pattern or path, raise max_results (max 500), or count them "
                f"with shell(\"rg -c -e '<pattern>' {norm}\")]"
            )
        else:
            head, tail = f"{matches} matching lines in {len(files)} files", ""
        text = "\n".join([head, *body_lines]) + tail
        return cap_text(text, self.max_chars, "narrow the pattern or lower max_results")

    @tool
    async def read(self, path: str, start_line: int = 1, n_lines: int = 100) -> str:
        """Read numbered lines of a text file (like `nl`/`sed -n`), from start_line, n_lines at most.

        Args:
            path: file under /corpus or /work
            start_line: first line to show (1-based)
            n_lines: how many lines to show (max 500)
        """
        start_line = max(1, start_line)
        n_lines = max(1, min(n_lines, 500))
        end = start_line + n_lines - 1
        awk = (
            f"NR>={start_line} && NR<={end} {{ s=$0; if (length(s)>{MAX_LINE}) "
            f's=substr(s,1,{MAX_LINE}) " …[+" (length($0)-{MAX_LINE}) " chars]"; printf "%6d\\t%s\\n", NR, s }} '
            'END { print "__TOTAL__\\t" NR }'
        )
        out = await self._run(path, [awk], '[ -f "$p" ] || exit 96; LC_ALL=C.UTF-8 awk "$1" "$p"')
        body, _, total_s = out.rpartition("__TOTAL__\t")
        total = int(total_s.strip() or 0)
        norm = check_path(path)
        if total == 0:
            return f"{norm} is empty."
        if start_line > total:
            raise ToolError(f"{norm} has only {total} lines; start_line must be at most {total}.")
        last = min(end, total)
        text = f"{norm}  lines {start_line}-{last} of {total}\n" + body.rstrip("\n")
        if last < total:
            text += f"\n[{total - last} more lines: read({norm!r}, start_line={last + 1})]"
        return cap_text(text, self.max_chars, f"read fewer lines at a time, e.g. read({norm!r}, {start_line}, 50)")

    @tool
    async def wc(self, path: str = CORPUS_ROOT) -> str:
        """Count lines, words and bytes of a file, or files, lines, words and bytes under a folder.

        Args:
            path: file or folder under /corpus or /work
        """
        out = await self._run(
            path,
            [],
            'if [ -d "$p" ]; then printf "dir "; find "$p" -type f | wc -l | tr "\\n" " "; '
            'find "$p" -type f -print0 | xargs -0 -r cat | wc -l -w -c; '
            'else printf "file 1 "; wc -l -w -c < "$p"; fi',
        )
        parts = out.split()
        if len(parts) < 5:
            raise ToolError(f"could not count {check_path(path)}.")
        kind, files, lines, words, nbytes = parts[0], int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4])
        norm = check_path(path)
        if kind == "dir":
            return f"{norm}/: {files} files, {lines} lines, {words} words, {nbytes} bytes ({_size(nbytes)})"
        return f"{norm}: {lines} lines, {words} words, {nbytes} bytes"

    @tool
    async def shell(self, command: str, timeout_s: float = 30.0) -> str:
        """Run a shell command in the sandbox (cwd /work; the corpus is read-only at /corpus).

        Use it for anything the other tools do not do: rg -c, sort | uniq -c, sed -n, awk, nl.

        Args:
            command: the command line, run by sh -c
            timeout_s: wall-time limit in seconds (max 120)
        """
        if not command.strip():
            raise ToolError("command must not be empty.")
        res = await self.sandbox.exec(command, cwd=WORK_ROOT, timeout=max(1.0, min(timeout_s, 120.0)))
        return self._render_exec(res, "command")

    @tool
    async def python(self, code: str, timeout_s: float = 30.0) -> str:
        """Run a Python 3 script in the sandbox (cwd /work; read the corpus under /corpus); prints stdout.

        Args:
            code: the Python source; print what you want to see
            timeout_s: wall-time limit in seconds (max 120)
        """
        if not code.strip():
            raise ToolError("code must not be empty.")
        res = await self.sandbox.exec(
            ["python3", "-I", "-c", code], cwd=WORK_ROOT, timeout=max(1.0, min(timeout_s, 120.0))
        )
        return self._render_exec(res, "script")

    def _render_exec(self, res: ExecResult, what: str) -> str:
        parts = []
        if res.stdout:
            parts.append(res.stdout.rstrip("\n"))
        if res.stderr.strip():
            parts.append("[stderr]\n" + res.stderr.rstrip("\n"))
        if res.timed_out:
            parts.append(f"[the {what} timed out]")
        elif res.exit_code != 0:
            parts.append(f"[exit code {res.exit_code}]")
        if res.truncated:
            parts.append("[output truncated by the sandbox]")
        text = "\n".join(parts) or f"[no output, exit code {res.exit_code}]"
        return cap_text(text, self.max_chars, "print less (pipe through head, or sed -n 'A,Bp')")
