"""``tether train``: the online RL loop (or offline training on stored episodes) from the command line.

Mount with ``app.command("train")(tether.training.cli.train)``.

    tether train --suite format --algo grpo --model local --steps 20 --group 8 --batch 4 [--lora] [--json]
    tether train --resume RUN_ID                   # continue a run from its latest checkpoint
    tether train --from-store RUN_ID --algo grpo   # train offline on the episodes of a stored run

Ctrl-C stops cleanly after the current step (a second Ctrl-C aborts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

import typer

from tether.errors import StoreError, UserError
from tether.training.grpo import GRPOConfig
from tether.training.loop import LoopConfig, OnlineLoop, load_run, summary_json, train_offline
from tether.training.ppo import PPOConfig
from tether.training.reinforce_pp import ReinforcePPConfig
from tether.training.trainer import ALGOS, TrainerConfig


def _trainer_config(
    algo: str,
    lr: float,
    lora: bool,
    micro_batch: int,
    kl: float,
    clip_low: float,
    clip_high: float,
    seed: int,
    agg: str,
    temperature: float = 1.0,
) -> TrainerConfig:
    if algo not in ALGOS:
        raise UserError(f"Unknown algorithm {algo!r}; use one of {', '.join(ALGOS)}.")
    if agg not in ("token", "sequence"):
        raise UserError(f"--loss-agg must be 'token' or 'sequence', not {agg!r}.")
    return TrainerConfig(
        algo=algo,
        lr=lr,
        lora=lora,
        micro_batch=micro_batch,
        seed=seed,
        temperature=temperature if temperature > 0 else 1.0,
        grpo=GRPOConfig(eps_low=clip_low, eps_high=clip_high, beta=kl, agg=agg),
        reinforce_pp=ReinforcePPConfig(eps_low=clip_low, eps_high=clip_high, beta=kl if kl else 0.01),
        ppo=PPOConfig(eps_low=clip_low, eps_high=clip_high, beta=kl),
    )


@contextlib.contextmanager
def _ctrl_c(on_first: Any) -> Any:
    """First Ctrl-C calls ``on_first``; the second one raises ``KeyboardInterrupt``."""
    presses = {"n": 0}

    def handler(signum: int, frame: Any) -> None:
        presses["n"] += 1
        if presses["n"] == 1:
            on_first()
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress(total: int, start: int, quiet: bool) -> tuple[Any, Any]:
    if quiet:
        return contextlib.nullcontext(), None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]train[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=False,
    )
    task = bar.add_task("reward -", total=total, completed=start)

    def update(step: int, m: dict[str, float]) -> None:
        desc = f"reward {m.get('reward_mean', 0):.3f}"
        if "eval_reward" in m:
            desc += f" eval {m['eval_reward']:.3f}"
        bar.update(task, completed=step, description=desc)

    return bar, update


async def _online(opts: dict[str, Any]) -> str:
    from tether.models import load_model
    from tether.store import open_store

    store = await open_store(opts["store"])
    try:
        run = None
        if opts["resume"]:
            run, loop_cfg, trainer_cfg = await load_run(store, opts["resume"])
            if opts["steps"] is not None:
                loop_cfg.steps = opts["steps"]
            spec = opts["model"] or run.config.get("model_spec", "local")
        else:
            loop_cfg = LoopConfig(
                suite=opts["suite"],
                steps=opts["steps"] if opts["steps"] is not None else 10,
                group=opts["group"],
                batch=opts["batch"],
                concurrency=opts["concurrency"],
                temperature=opts["temperature"],
                max_tokens=opts["max_tokens"],
                max_turns=opts["max_turns"],
                eval_every=opts["eval_every"],
                eval_tasks=opts["eval_tasks"],
                seed=opts["seed"],
            )
            trainer_cfg = opts["trainer"]
            spec = opts["model"] or "local"
        model = load_model(spec)
        try:
            trainer_model = None
            if not hasattr(model, "hf_model"):
                if not opts["trainer_model"]:
                    raise UserError(f"Model {spec!r} runs out of process; pass --trainer-model PATH (its HF folder).")
                from transformers import AutoModelForCausalLM

                trainer_model = AutoModelForCausalLM.from_pretrained(opts["trainer_model"], local_files_only=True)
            pad_id = getattr(model, "pad_id", None)
            loop = OnlineLoop(model, store, loop_cfg, trainer_cfg, run=run, trainer_model=trainer_model, pad_id=pad_id)
            loop.run.config["model_spec"] = spec
            start = await loop.resume() if run is not None else 0
            bar, update = _progress(loop_cfg.steps, start, opts["json"])

            def stop() -> None:
                loop.stop()
                if not opts["json"]:
                    print("Stopping after the current step (Ctrl-C again to abort).", file=sys.stderr)

            with _ctrl_c(stop), bar:
                history = await loop.run_steps(update)
            return summary_json(loop.run, history, {"stopped": loop.stopping, "checkpoints": str(loop.root)})
        finally:
            await model.aclose()
    finally:
        await store.close()


async def _offline(opts: dict[str, Any]) -> str:
    from tether.models import load_model
    from tether.store import open_store

    store = await open_store(opts["store"])
    try:
        model = load_model(opts["model"] or "local")
        try:
            module = getattr(model, "hf_model", None)
            if module is None:
                raise UserError("Offline training needs a local model (--model local or local:PATH).")
            stopped = {"v": False}
            bar, update = _progress(opts["steps"] or 10, 0, opts["json"])
            with _ctrl_c(lambda: stopped.__setitem__("v", True)), bar:
                run, history = await train_offline(
                    store,
                    opts["from_store"],
                    module,
                    opts["trainer"],
                    steps=opts["steps"] or 10,
                    batch_groups=opts["batch"],
                    pad_id=int(getattr(model, "pad_id", 0) or 0),
                    model_name=model.name,
                    progress=update,
                    should_stop=lambda: stopped["v"],
                )
            return summary_json(run, history, {"stopped": stopped["v"]})
        finally:
            await model.aclose()
    finally:
        await store.close()


def train(
    suite: str = typer.Option("format", "--suite", help="suite to train on"),
    algo: str = typer.Option("grpo", "--algo", help="grpo | reinforce_pp | ppo"),
    model: str | None = typer.Option(None, "--model", help="model spec (default: local)"),
    steps: int | None = typer.Option(None, "--steps", help="train until this step (default 10)"),
    group: int = typer.Option(4, "--group", help="episodes per task (GRPO group size)"),
    batch: int = typer.Option(4, "--batch", help="tasks (or stored groups) per step"),
    lora: bool = typer.Option(False, "--lora", help="train LoRA adapters instead of all weights"),
    lr: float = typer.Option(1e-5, "--lr", help="learning rate"),
    micro_batch: int = typer.Option(8, "--micro-batch", help="sequences per forward pass (gradient accumulation)"),
    kl: float = typer.Option(0.0, "--kl", help="KL coefficient to the reference model"),
    clip_low: float = typer.Option(0.2, "--clip-low", help="lower ratio clip"),
    clip_high: float = typer.Option(0.2, "--clip-high", help="upper ratio clip (0.28 = DAPO clip-higher)"),
    loss_agg: str = typer.Option("token", "--loss-agg", help="token | sequence"),
    concurrency: int = typer.Option(32, "--concurrency", help="episodes in flight"),
    temperature: float = typer.Option(1.0, "--temperature", help="rollout temperature"),
    max_tokens: int = typer.Option(256, "--max-tokens", help="tokens per model turn"),
    max_turns: int = typer.Option(4, "--max-turns", help="model turns per episode"),
    eval_every: int = typer.Option(0, "--eval-every", help="evaluate on held-out tasks every K steps (0: never)"),
    eval_tasks: int = typer.Option(32, "--eval-tasks", help="held-out tasks per evaluation"),
    seed: int = typer.Option(0, "--seed"),
    store: str | None = typer.Option(None, "--store", help="store URL (default: settings)"),
    resume: str | None = typer.Option(None, "--resume", help="continue training run RUN from its checkpoint"),
    from_store: str | None = typer.Option(None, "--from-store", help="train offline on the episodes of run RUN"),
    trainer_model: str | None = typer.Option(None, "--trainer-model", help="HF folder to train when serving elsewhere"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary instead of a progress bar"),
) -> None:
    """Train a model with RL from its own episodes (online), or from stored episodes (--from-store)."""
    try:
        if resume and from_store:
            raise UserError("Use either --resume or --from-store, not both.")
        opts: dict[str, Any] = dict(
            suite=suite,
            model=model,
            steps=steps,
            group=group,
            batch=batch,
            concurrency=concurrency,
            temperature=temperature,
            max_tokens=max_tokens,
            max_turns=max_turns,
            eval_every=eval_every,
            eval_tasks=eval_tasks,
            seed=seed,
            store=store,
            resume=resume,
            from_store=from_store,
            trainer_model=trainer_model,
            json=as_json,
        )
        opts["trainer"] = _trainer_config(
            algo, lr, lora, micro_batch, kl, clip_low, clip_high, seed, loss_agg, temperature
        )
        out = asyncio.run(_offline(opts) if from_store else _online(opts))
    except (UserError, StoreError) as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("Aborted.", err=True)
        raise typer.Exit(130) from None
    if as_json:
        typer.echo(out)
    else:
        summary = json.loads(out)
        typer.echo(
            f"run {summary['run_id']}: {summary['steps']} steps, "
            f"reward {summary['reward_first']} -> {summary['reward_last']}"
        )
