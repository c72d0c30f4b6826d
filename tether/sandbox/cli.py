"""``tether sandbox``: exec, check, build-image (a typer app mounted by ``tether.cli``)."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tether.errors import UserError
from tether.sandbox.base import SandboxError, SandboxLimits
from tether.sandbox.checks import CheckResult
from tether.sandbox.image import DEFAULT_TAG
from tether.sandbox.registry import backend_names, sandbox_factory

app = typer.Typer(help="Run commands in a sandbox, check the backends, build the docker image.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def one_sentence_errors(fn: F) -> F:
    """Print a ``UserError`` as one sentence and exit 2 (no traceback), whoever mounts the app."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


BackendOpt = Annotated[str | None, typer.Option("--backend", "-b", help="bwrap, docker or dummy (default: config).")]


def _limits(timeout: float | None, memory: int | None) -> SandboxLimits:
    limits = SandboxLimits()
    if timeout is not None:
        if timeout <= 0:
            raise UserError("--timeout must be a positive number of seconds")
        limits.timeout_s = timeout
    if memory is not None:
        if memory < 16:
            raise UserError("--memory must be at least 16 MB")
        limits.memory_mb = memory
    return limits


@app.command("exec")
@one_sentence_errors
def exec_cmd(
    cmd: Annotated[list[str], typer.Argument(help="The command and its arguments (after --).")],
    backend: BackendOpt = None,
    timeout: Annotated[float | None, typer.Option(help="Wall-clock limit in seconds.")] = None,
    memory: Annotated[int | None, typer.Option(help="Memory limit in MB.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ExecResult as JSON.")] = False,
) -> None:
    """Run CMD in a fresh sandbox and print its ExecResult; exits with the command's exit code."""
    limits = _limits(timeout, memory)
    factory = sandbox_factory(backend, limits)

    async def run() -> object:
        try:
            async with await factory.start() as sandbox:
                return await sandbox.exec(cmd if len(cmd) > 1 else cmd[0], timeout=limits.timeout_s)
        except SandboxError as exc:
            raise UserError(str(exc)) from None

    result = asyncio.run(run())
    from tether.sandbox.base import ExecResult

    assert isinstance(result, ExecResult)
    if as_json:
        typer.echo(result.model_dump_json())
    else:
        if result.stdout:
            typer.echo(result.stdout, nl=not result.stdout.endswith("\n"))
        if result.stderr:
            typer.echo(result.stderr, err=True, nl=not result.stderr.endswith("\n"))
        flags = [n for n in ("timed_out", "oom_killed", "truncated") if getattr(result, n)]
        err_console.print(
            f"[dim]{factory.backend}: exit {result.exit_code} in {result.duration_ms:.0f} ms"
            f"{' (' + ', '.join(flags) + ')' if flags else ''}[/dim]"
        )
    raise typer.Exit(min(max(result.exit_code, 0), 255))


def run_checks(backends: list[str], suites: list[str]) -> list[CheckResult]:
    """Run the named suites on each backend; the escape suite is skipped for the dummy."""
    from tether.sandbox.conformance import CONFORMANCE
    from tether.sandbox.escape import ESCAPE

    known = {"conformance": CONFORMANCE, "escape": ESCAPE}

    async def run() -> list[CheckResult]:
        results: list[CheckResult] = []
        for name in backends:
            factory = sandbox_factory(name)
            for suite_name in suites:
                if suite_name == "escape" and name == "dummy":
                    results.append(
                        CheckResult("escape", "(all)", "dummy", False, "skipped: the dummy isolates nothing")
                    )
                    continue
                results.extend(await known[suite_name].run(factory))
        return results

    return asyncio.run(run())


@app.command("check")
@one_sentence_errors
def check_cmd(
    backend: Annotated[
        str | None, typer.Option("--backend", "-b", help="bwrap, docker, dummy or all (default: bwrap and docker).")
    ] = None,
    suite: Annotated[str, typer.Option(help="conformance, escape or all.")] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON lines.")] = False,
) -> None:
    """Run the conformance and escape suites and print a table; exits 1 when anything fails."""
    if backend in (None, "all"):
        backends = ["bwrap", "docker"]
    elif backend in backend_names():
        backends = [backend]
    else:
        raise UserError(f"unknown sandbox backend {backend!r}; choose one of {', '.join(backend_names())} or all")
    if suite not in ("conformance", "escape", "all"):
        raise UserError("--suite must be conformance, escape or all")
    suites = ["conformance", "escape"] if suite == "all" else [suite]
    results = run_checks(backends, suites)
    if as_json:
        for r in results:
            typer.echo(json.dumps(r.__dict__))
    else:
        table = Table(title="tether sandbox check")
        for col in ("suite", "check / attack", "backend", "passed / contained", "how", "s"):
            table.add_column(col, overflow="fold")
        for r in results:
            ok = (
                "[green]yes[/green]"
                if r.passed
                else ("[yellow]skipped[/yellow]" if r.name == "(all)" else "[red]NO[/red]")
            )
            table.add_row(r.suite, r.name, r.backend, ok, r.how, f"{r.seconds:.1f}")
        console.print(table)
        failed = [r for r in results if not r.passed and r.name != "(all)"]
        console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if any(not r.passed and r.name != "(all)" for r in results):
        raise typer.Exit(1)


@app.command("build-image")
@one_sentence_errors
def build_image_cmd(
    tag: Annotated[str, typer.Option(help="Image tag to build.")] = DEFAULT_TAG,
    base: Annotated[
        str | None, typer.Option(help="Registry base image (default: offline, from a debootstrap rootfs).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when the tag exists.")] = False,
) -> None:
    """Build the docker sandbox image (skipped when the tag exists)."""
    from tether.sandbox.image import build_image

    build_image(tag, base=base, force=force, log=lambda m: console.print(f"[dim]{m}[/dim]"))


def main() -> None:  # pragma: no cover - for `python -m tether.sandbox.cli`
    """Run the app, printing a ``UserError`` as one sentence (exit 2)."""
    try:
        app()
    except UserError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
