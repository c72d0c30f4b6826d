"""Readable terminal rendering of events, episodes and reports (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from tether.types import Episode, Step


def _step_lines(step: Step) -> list[str]:
    if step.role == "prompt":
        return [f"[bold cyan]user[/bold cyan] {step.text}"]
    if step.role == "assistant":
        lines = [f"[bold green]model[/bold green] ({len(step.token_ids)} tokens, {step.duration_ms:.0f} ms)"]
        lines.append(step.text.strip())
        return lines
    lines = []
    for r in step.tool_results:
        tag = "[red]tool error[/red]" if r.is_error else f"[yellow]tool {r.name}[/yellow]"
        content = r.content if len(r.content) < 600 else r.content[:600] + " …"
        lines.append(f"{tag} {content}")
    return lines


def print_event(console: Console, event: Any) -> None:
    """Print one streamed event (token deltas are skipped; whole steps are printed)."""
    if event.type == "episode_started":
        console.print(f"[dim]episode {event.episode_id} · task {event.task.id}[/dim]")
    elif event.type == "step":
        if event.step.role == "prompt":
            return
        for line in _step_lines(event.step):
            console.print(line, highlight=False, markup=line.startswith("["))
    elif event.type == "intermediate_answer":
        console.print(
            f"[magenta]answer #{event.index + 1}[/magenta] {event.text} [dim]({event.elapsed_ms:.0f} ms)[/dim]"
        )
    elif event.type == "episode_finished":
        ep = event.episode
        reward = "" if ep.reward is None else f" · reward {ep.reward:.3g}"
        console.print(
            f"[bold]{ep.status}[/bold] · answer {ep.final_answer!r}{reward} · "
            f"{ep.metrics.get('turns', 0):.0f} turns · {ep.duration_ms:.0f} ms"
        )
        if ep.error:
            console.print(f"[red]{ep.error.strip().splitlines()[-1]}[/red]", highlight=False)


def print_episode(console: Console, episode: Episode) -> None:
    """Print a stored episode, step by step."""
    console.print(
        f"[bold]episode {episode.id}[/bold] · run {episode.run_id} · {episode.suite}/{episode.task_id} · "
        f"model {episode.model} v{episode.policy_version} · {episode.status}"
    )
    for step in episode.steps:
        console.print(f"[dim]— step {step.index} ({step.role})[/dim]")
        for line in _step_lines(step):
            console.print(line, highlight=False, markup=line.startswith("["))
    console.print(f"answer: {episode.final_answer!r}  rewards: {episode.rewards}  metrics: {episode.metrics}")
    if episode.error:
        console.print(f"[red]{episode.error}[/red]", highlight=False)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if value is None:
        return "–"
    return str(value)


def print_report(console: Console, report: dict[str, Any]) -> None:
    """Print an eval report: the summary figures, then any nested tables."""
    table = Table("figure", "value", title=f"eval {report.get('suite', '')}")
    for key, value in report.items():
        if isinstance(value, dict):
            continue
        table.add_row(key, _fmt(value))
    console.print(table)
    for key, value in report.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            columns = sorted({c for row in value.values() for c in row})
            sub = Table(key, *columns, title=key)
            for row_name, row in value.items():
                sub.add_row(str(row_name), *(_fmt(row.get(c)) for c in columns))
            console.print(sub)
        elif isinstance(value, dict):
            sub = Table("figure", "value", title=key)
            for k, v in value.items():
                sub.add_row(str(k), _fmt(v))
            console.print(sub)


def print_demo(console: Console, report: dict[str, Any]) -> None:
    """Print the demo's summary table."""
    table = Table("suite", "episodes", "success rate", "mean turns", "tokens", "time (s)", title="tether demo")
    for row in report["suites"]:
        table.add_row(
            row["suite"], str(row["episodes"]), f"{row['success_rate']:.0%}", f"{row['mean_turns']:.1f}",
            str(row["tokens"]), f"{row['time_s']:.1f}",
        )
    console.print(table)
    console.print(f"stored in {report['store']} · run ids: {', '.join(report['runs'])}")
