"""Time to first answer: interleaved vs think-answer on ``kk`` with one model, in one run.

Runs the same ``kk`` tasks through the real agent in both tagged modes with the same
model and sampling, and prints per mode: Pass@1, the share of episodes that produced an
answer at all, the mean time to first answer as a fraction of the response (characters,
and tokens when the model has a tokenizer), the mean wall-clock ms to the first
``</answer>``, the format-error rate and the mean number of intermediate answers. The
last line is the ratio interleaved / think-answer of the mean TTFA fraction (the paper
reports about 0.17 / 0.9 after RL; an untrained model mostly shows how well it follows
the instruction).

    python bench/reasoning_ttfa.py [--model local] [--n 6] [--people 3] [--max-tokens 384] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import tether
from tether.agents.interleaved import answer_metrics
from tether.agents.tags import parse_response
from tether.models import load_model
from tether.suites.reasoning import KnightsKnavesSuite
from tether.types import Episode, SamplingParams

MODES = ("think-answer", "interleaved")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def figures(suite: KnightsKnavesSuite, episodes: list[Episode], decode: Any) -> dict[str, Any]:
    """The bench's figures for one mode's episodes (re-scored from their stored steps)."""
    for e in episodes:
        if e.task is not None and e.status != "error":
            e.rewards, e.reward_errors = suite.score(e.task, e)
    out = dict(suite.summarize(episodes))
    answered = [e for e in episodes if e.metrics.get("n_answers", 0.0) > 0]
    out["answered_rate"] = len(answered) / len(episodes) if episodes else None
    out["ttfa_fraction_answered_mean"] = _mean([e.metrics["ttfa_fraction"] for e in answered])
    if decode is not None:
        token_fracs = []
        for e in episodes:
            step = e.model_steps[-1] if e.model_steps else None
            if step is None or not step.token_ids:
                continue
            m = answer_metrics(parse_response(step.text), token_ids=step.token_ids, decode=decode)
            token_fracs.append(m["ttfa_token_fraction"])
        out["ttfa_token_fraction_mean"] = _mean(token_fracs)
    out["mean_response_tokens"] = _mean([float(len(s.token_ids)) for e in episodes for s in e.model_steps[-1:]])
    out["errors"] = sum(1 for e in episodes if e.status == "error")
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    suite = KnightsKnavesSuite(people=args.people)
    tasks = suite.tasks(n=args.n, seed=args.seed)
    model = load_model(args.model)
    tokenizer = getattr(model, "tokenizer", None)
    decode = (lambda ids: tokenizer.decode(ids, skip_special_tokens=True)) if tokenizer is not None else None
    sampling = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
    results: dict[str, Any] = {"model": model.name, "n": args.n, "people": args.people, "modes": {}}
    try:
        for mode in MODES:
            started = time.perf_counter()
            episodes = await tether.rollout(
                tasks,
                suite=suite,
                model=model,
                store="memory://",
                reasoning=mode,
                concurrency=args.concurrency,
                sampling=sampling,
                max_turns=1,
                max_new_tokens=args.max_tokens,
            )
            fig = figures(suite, episodes, decode)
            fig["time_s"] = time.perf_counter() - started
            results["modes"][mode] = fig
    finally:
        await model.aclose()
    base = results["modes"]["think-answer"]["ttfa_fraction_mean"]
    inter = results["modes"]["interleaved"]["ttfa_fraction_mean"]
    results["ttfa_ratio_interleaved_over_think_answer"] = inter / base if base else None
    return results


def render(results: dict[str, Any]) -> str:
    keys = [
        "pass@1", "answered_rate", "ttfa_fraction_mean", "ttfa_fraction_answered_mean", "ttfa_token_fraction_mean",
        "ttfa_ms_mean", "format_error_rate", "n_intermediate_mean", "reward_total_mean", "mean_response_tokens",
        "errors", "time_s",
    ]  # fmt: skip

    def fmt(v: Any) -> str:
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = [f"kk ({results['people']} people, n={results['n']}) with {results['model']}"]
    lines.append(f"{'figure':30s}" + "".join(f"{m:>16s}" for m in MODES))
    for k in keys:
        lines.append(f"{k:30s}" + "".join(f"{fmt(results['modes'][m].get(k)):>16s}" for m in MODES))
    lines.append(f"ttfa ratio interleaved / think-answer: {fmt(results['ttfa_ratio_interleaved_over_think_answer'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local")
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args()
    res = asyncio.run(main(ns))
    print(json.dumps(res, indent=2) if ns.json else render(res))
    sys.exit(0)
