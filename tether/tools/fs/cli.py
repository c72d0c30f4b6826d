"""Command-line entry points of the fs area, for the lead's ``tether`` CLI.

- ``corpus_build(source, out, ...)`` backs ``tether corpus build SOURCE --out DIR`` (progress bar);
  ``corpus_build_command`` is the typer command (``corpus_app.command("build")(corpus_build_command)``),
  ``corpus_app`` a ready sub-app holding it.
- ``call_tool(tool, arguments, corpus=..., session=...)`` backs ``tether tools call fs TOOL --args JSON
  --corpus DIR [--session NAME]``: a named session keeps its ``/work`` on the host under
  ``cache_dir()/fs/sessions/NAME/`` so separate processes share it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from tether.config import cache_dir
from tether.errors import TetherError, UserError
from tether.tools.fs.corpus import Manifest, build_corpus
from tether.types import ToolCall

_SESSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def session_dir(name: str) -> Path:
    """The host folder that holds session ``name``'s ``/work``; ``UserError`` on a bad name."""
    if not _SESSION.match(name) or ".." in name:
        raise UserError(f"Session name {name!r} must be 1-64 letters, digits, '.', '_' or '-'.")
    return cache_dir() / "fs" / "sessions" / name


def corpus_build(
    source: Path | str,
    out: Path | str,
    *,
    kind: str | None = None,
    max_entries: int = 1000,
    max_section_chars: int = 20_000,
    force: bool = False,
    show_progress: bool = True,
) -> Manifest:
    """Build a corpus tree from ``source`` into ``out`` with a progress display; returns the manifest."""
    if show_progress:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as bar:
            job = bar.add_task("building corpus", total=None)

            def progress(docs: int, nbytes: int) -> None:
                bar.update(job, description=f"{docs:,} documents, {nbytes / 1e6:,.1f} MB")

            return build_corpus(
                source, out, kind=kind, max_entries=max_entries, max_section_chars=max_section_chars,
                force=force, progress=progress,
            )  # fmt: skip
    return build_corpus(
        source, out, kind=kind, max_entries=max_entries, max_section_chars=max_section_chars, force=force
    )


async def call_tool(
    tool: str, arguments: dict[str, Any], *, corpus: Path | str, session: str | None = None
) -> dict[str, Any]:
    """Call one fs tool on ``corpus``; returns ``{"tool", "content", "is_error", "data"}``.

    With ``session`` the sandbox's ``/work`` is loaded from and saved back to the
    session folder, so files written in one call are there in the next.
    """
    from tether.tools.fs.tools import FsToolSet

    root = Path(corpus)
    if not root.is_dir():
        raise UserError(f"Corpus folder {str(corpus)!r} does not exist.")
    work: Path | None = None
    if session is not None:
        work = session_dir(session)
        work.mkdir(parents=True, exist_ok=True)
    toolset = FsToolSet(corpus=root, work_dir=work)
    names = [t.name for t in toolset.tools()]
    if tool not in names:
        raise UserError(f"Unknown fs tool {tool!r}; choose one of {', '.join(names)}.")
    async with toolset:
        result = await toolset.call(ToolCall(name=tool, arguments=arguments))
    return {"tool": tool, "content": result.content, "is_error": result.is_error, "data": result.data}


corpus_app = typer.Typer(help="Lay documents out as a corpus tree (one file per document).", no_args_is_help=True)


def corpus_build_command(
    source: Path = typer.Argument(..., help="a JSONL file (id/text/metadata), a folder of text files, or a text"),
    out: Path = typer.Option(..., "--out", help="the corpus folder to create"),
    kind: str | None = typer.Option(None, "--kind", help="force the source kind: jsonl, folder or text"),
    max_entries: int = typer.Option(1000, "--max-entries", help="most entries in one folder"),
    max_section_chars: int = typer.Option(20_000, "--max-section-chars", help="longest section of a split text"),
    force: bool = typer.Option(False, "--force", help="replace OUT if it exists"),
    as_json: bool = typer.Option(False, "--json", help="print the manifest as JSON"),
) -> None:
    """Build a corpus tree from SOURCE into OUT."""
    try:
        manifest = corpus_build(
            source, out, kind=kind, max_entries=max_entries, max_section_chars=max_section_chars, force=force,
            show_progress=not as_json,
        )  # fmt: skip
    except TetherError as exc:  # a person's bad input: one sentence, exit 2
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(manifest.model_dump_json(indent=2))
    else:
        typer.echo(
            f"{manifest.documents:,} documents ({manifest.bytes / 1e6:,.1f} MB, ~{manifest.est_tokens:,} tokens) "
            f"in {manifest.folders:,} folders at {out} ({manifest.build_seconds:.1f}s)"
        )


corpus_app.command("build")(corpus_build_command)


@corpus_app.callback()
def _corpus_group() -> None:
    """Lay documents out as a corpus tree (one file per document)."""
