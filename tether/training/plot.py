"""A PNG training curve from the metrics stored for a run (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_PANELS = ("reward_mean", "eval_reward", "kl_rollout", "entropy", "clip_frac", "degenerate_groups")


def plot_metrics(
    rows: list[dict[str, Any]], path: str | Path, *, title: str = "", panels: Sequence[str] = DEFAULT_PANELS
) -> Path:
    """Plot each metric in ``panels`` (those present) against ``step`` and save a PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [p for p in panels if any(p in r and r[p] is not None for r in rows)]
    if not present:
        raise ValueError("no metrics to plot")
    cols = min(3, len(present))
    nrows = (len(present) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, present, strict=False):
        pts = [(r["step"], r[name]) for r in rows if r.get(name) is not None]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(present) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
