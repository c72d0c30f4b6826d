"""``make train-demo``: GRPO on SmolLM2-135M learns the ``format`` suite on a CPU.

Runs greedy held-out evaluation, trains online with GRPO (in-process ``LocalModel``,
in-memory store unless ``--store`` is given), evaluates again on the same held-out tasks,
plots the stored metrics to ``docs/img/train_demo.png`` and prints, as its last line,

    held-out reward gain: +D (95% CI [LO, HI])

where the interval is a paired bootstrap over the held-out tasks of (after - before).

    python -m tether.training.demo [--steps 12] [--group 8] [--batch 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

from tether.training.loop import LoopConfig, OnlineLoop
from tether.training.trainer import TrainerConfig


def bootstrap_diff(before: list[float], after: list[float], n: int = 4000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``after - before`` (paired by task) with a percentile bootstrap 95% interval."""
    diffs = [a - b for a, b in zip(after, before, strict=True)]
    rng = random.Random(seed)
    k = len(diffs)
    means = sorted(sum(diffs[rng.randrange(k)] for _ in range(k)) / k for _ in range(n))
    return sum(diffs) / k, means[int(0.025 * n)], means[int(0.975 * n) - 1]


def default_threads() -> int:
    """All CPUs this process may use, or 1 when the machine is already busy (OpenMP spins badly)."""
    cpus = len(os.sched_getaffinity(0)) or 1
    return 1 if os.getloadavg()[0] > cpus else cpus


async def main_async(args: argparse.Namespace) -> int:
    from tether.models.local import LocalModel, from_spec
    from tether.store import open_store

    threads = args.threads or default_threads()
    model = from_spec(args.model, threads=threads) if args.model else from_spec("", threads=threads)
    assert isinstance(model, LocalModel)
    store = await open_store(args.store)
    loop_cfg = LoopConfig(
        suite="format",
        steps=args.steps,
        group=args.group,
        batch=args.batch,
        concurrency=64,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        max_turns=1,
        eval_tasks=args.eval_tasks,
        seed=args.seed,
        save_every=0,
    )
    trainer_cfg = TrainerConfig(algo="grpo", lr=args.lr, micro_batch=8, seed=args.seed, lora=args.lora)
    from tether.suites.format import FormatSuite

    loop = OnlineLoop(model, store, loop_cfg, trainer_cfg, suite=FormatSuite())
    started = time.monotonic()
    try:
        before = await loop.evaluate()
        r0 = [e.reward or 0.0 for e in before]
        print(f"before: held-out reward {sum(r0) / len(r0):.3f} on {len(r0)} tasks ({time.monotonic() - started:.0f}s)")

        def progress(step: int, m: dict[str, float]) -> None:
            print(
                f"step {step:3d}  reward {m['reward_mean']:.3f}  kl {m['kl_rollout']:.4f}  "
                f"entropy {m['entropy']:.2f}  "
                f"degenerate {int(m.get('degenerate_groups', 0))}/{int(m.get('groups', 0))}  "
                f"rollout {m['rollout_time_s']:.0f}s train {m['train_time_s']:.0f}s",
                flush=True,
            )

        await loop.run_steps(progress)
        after = await loop.evaluate()
        r1 = [e.reward or 0.0 for e in after]
        print(f"after: held-out reward {sum(r1) / len(r1):.3f} ({time.monotonic() - started:.0f}s)")
        rows = await store.get_metrics(loop.run.id)
        if rows and args.plot:
            from tether.training.plot import plot_metrics

            rows[-1]["eval_reward"] = sum(r1) / len(r1)
            rows.insert(0, {"step": 0, "eval_reward": sum(r0) / len(r0)})
            path = plot_metrics(rows, args.plot, title="GRPO, SmolLM2-135M, format suite (CPU)")
            print(f"curve: {path}")
        diff, lo, hi = bootstrap_diff(r0, r1, seed=args.seed)
        print(f"held-out reward gain: {diff:+.3f} (95% CI [{lo:+.3f}, {hi:+.3f}])")
        return 0
    finally:
        await model.aclose()
        await store.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The demo's options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="", help="HF folder (default: the embedded SmolLM2-135M)")
    p.add_argument("--store", default="memory://", help="store URL (default: in memory)")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--lora", action="store_true")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--eval-tasks", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--plot", default=str(Path("docs/img/train_demo.png")))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
