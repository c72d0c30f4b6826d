"""Trainer throughput: tether's GRPO step vs TRL's GRPO loss computation, same model, same batch, same run.

A fixed batch of single-turn episodes (random prompt and completion ids, GRPO groups of
``--group``) is stored in an in-memory store, read back, and trained on by

* tether: ``Trainer.train_step`` (GRPO, token aggregation, micro-batches of ``--micro-batch``);
* TRL:    ``GRPOTrainer._compute_loss`` (``loss_type="dapo"``, the same clip) on the same
          sequences laid out as TRL expects (left-padded prompts, right-padded completions),
          followed by backward and the same AdamW step.

Both run ``--steps`` timed steps after one warm-up step, alternating, on fresh copies of the
same random-initialised model (``--config-size``; no download). Prints trainer tokens/s
(prompt + completion tokens per second of forward+backward+optimizer) for both, the ratio
tether/TRL (target >= 1.0), and on CUDA the model FLOPs utilisation of tether's step
(6 * params * tokens + attention, over ``--peak-tflops``).

    python bench/train_throughput.py [--config-size 135m] [--device cpu|cuda] [--steps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import random
import tempfile
import time

import torch

CONFIGS = {
    # SmolLM2-135M's shape, and larger Llama shapes for MFU on a GPU
    "tiny": dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    ),
    "135m": dict(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3
    ),
    "360m": dict(
        hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5
    ),
    "1.7b": dict(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32, num_key_value_heads=32
    ),
}


def make_model(size: str, device: str, vocab: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, max_position_embeddings=4096, tie_word_embeddings=True, **CONFIGS[size])
    return LlamaForCausalLM(cfg).to(device)


async def stored_batch(n_tasks: int, group: int, prompt_len: int, completion_len: int, vocab: int):  # type: ignore[no-untyped-def]
    from tether.store import InMemoryStore
    from tether.training.batch import build_batch, select_episodes
    from tether.types import Episode, Message, Step, Task

    rng = random.Random(0)
    store = InMemoryStore()
    for t in range(n_tasks):
        prompt = [rng.randrange(3, vocab) for _ in range(prompt_len - rng.randrange(0, prompt_len // 4))]
        for _ in range(group):
            n = completion_len - rng.randrange(0, completion_len // 2)
            ids = [rng.randrange(3, vocab) for _ in range(n)]
            ep = Episode(
                run_id="bench",
                suite="bench",
                task_id=f"t{t}",
                task=Task(id=f"t{t}", suite="bench", prompt="p"),
                status="done",
                rewards={"total": float(rng.random() < 0.5)},
            )
            await store.start_episode(ep)
            await store.add_step(ep.id, Step(index=0, role="prompt", messages=[Message(role="user", content="p")]))
            await store.add_step(
                ep.id,
                Step(
                    index=1,
                    role="assistant",
                    token_ids=ids,
                    logprobs=[-(float(vocab) ** 0.5) / 20] * n,
                    loss_mask=[1] * n,
                    prompt_token_ids=prompt,
                ),
            )
            await store.finish_episode(ep)
    return build_batch(await select_episodes(store, run_id="bench"))


def trl_inputs(batch, pad_id: int, device: str, advantages: torch.Tensor):  # type: ignore[no-untyped-def]
    seqs = batch.sequences
    prompts = [s.input_ids[: s.loss_mask.index(1)] for s in seqs]
    comps = [s.input_ids[s.loss_mask.index(1) :] for s in seqs]
    olds = [s.old_logprobs[s.loss_mask.index(1) :] for s in seqs]
    P, C = max(map(len, prompts)), max(map(len, comps))
    n = len(seqs)
    out = {
        "prompt_ids": torch.full((n, P), pad_id),
        "prompt_mask": torch.zeros((n, P), dtype=torch.long),
        "completion_ids": torch.full((n, C), pad_id),
        "completion_mask": torch.zeros((n, C), dtype=torch.long),
        "old_per_token_logps": torch.zeros((n, C)),
        "advantages": advantages[[s.sample for s in seqs]],
    }
    for i, (p, c, o) in enumerate(zip(prompts, comps, olds, strict=True)):
        out["prompt_ids"][i, P - len(p) :] = torch.tensor(p)
        out["prompt_mask"][i, P - len(p) :] = 1
        out["completion_ids"][i, : len(c)] = torch.tensor(c)
        out["completion_mask"][i, : len(c)] = 1
        out["old_per_token_logps"][i, : len(o)] = torch.tensor(o)
    out = {k: v.to(device) for k, v in out.items()}
    out["num_items_in_batch"] = out["completion_mask"].sum().float()  # DAPO: normalise by the step's token count
    return out


def build_trl(model, tokenizer_dir: str, args):  # type: ignore[no-untyped-def]
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    cfg = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-bench-"),
        per_device_train_batch_size=args.group,
        num_generations=args.group,
        max_completion_length=args.completion_len,
        loss_type="dapo",
        beta=0.0,
        epsilon=0.2,
        report_to=[],
        use_cpu=args.device == "cpu",
        bf16=args.device == "cuda",
        logging_steps=1000,
        save_strategy="no",
    )
    ds = Dataset.from_dict({"prompt": ["hello"] * args.group})
    return GRPOTrainer(
        model=model,
        reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
        args=cfg,
        train_dataset=ds,
        processing_class=tokenizer_dir,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-size", default="135m", choices=sorted(CONFIGS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--prompt-len", type=int, default=96)
    p.add_argument("--completion-len", type=int, default=64)
    p.add_argument("--micro-batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--peak-tflops", type=float, default=989.0, help="accelerator peak (H100 bf16 dense: 989)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from tether.models.testing import tiny_tokenizer
    from tether.training.advantages import group_advantages
    from tether.training.trainer import Trainer, TrainerConfig

    tok = tiny_tokenizer()
    tok_dir = tempfile.mkdtemp(prefix="bench-tok-")
    tok.save_pretrained(tok_dir)
    vocab = 49152 if args.config_size != "tiny" else len(tok)
    batch = asyncio.run(stored_batch(args.tasks, args.group, args.prompt_len, args.completion_len, vocab))
    n_tokens = sum(len(s.input_ids) for s in batch.sequences)
    base = make_model(args.config_size, args.device, vocab)
    n_params = sum(p.numel() for p in base.parameters())

    ours = Trainer(copy.deepcopy(base), TrainerConfig(algo="grpo", lr=1e-6, micro_batch=args.micro_batch), pad_id=2)
    from transformers import AutoTokenizer

    trl_model = copy.deepcopy(base)
    trl = build_trl(trl_model, AutoTokenizer.from_pretrained(tok_dir), args)
    trl.current_gradient_accumulation_steps = trl.args.steps_per_generation  # normaliser = the step's tokens
    trl_opt = torch.optim.AdamW([q for q in trl_model.parameters() if q.requires_grad], lr=1e-6)
    adv = group_advantages(batch.rewards(), batch.group_ids()).advantages.to(args.device)
    inputs = trl_inputs(batch, 2, args.device, adv)
    del base

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def trl_step() -> None:
        trl_model.train()
        n = inputs["prompt_ids"].shape[0]
        for i in range(0, n, args.micro_batch):
            part = {k: (v[i : i + args.micro_batch] if v.dim() else v) for k, v in inputs.items()}
            loss = trl._compute_loss(trl_model, part)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(trl_model.parameters(), 1.0)
        trl_opt.step()
        trl_opt.zero_grad(set_to_none=True)

    times = {"tether": [], "trl": []}
    mfu_flops = 6 * n_params * n_tokens
    for i in range(args.steps + 1):
        for name, fn in (("tether", lambda: ours.train_step(batch)), ("trl", trl_step)):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if i > 0:  # the first step warms up
                times[name].append(time.perf_counter() - t0)
    tps = {k: n_tokens * len(v) / sum(v) for k, v in times.items()}
    print(
        f"model {args.config_size} ({n_params / 1e6:.0f}M params) on {args.device}; batch {len(batch.sequences)} "
        f"sequences, {n_tokens} tokens; {args.steps} timed steps each"
    )
    print(f"tether GRPO: {tps['tether']:.0f} tokens/s")
    print(f"TRL GRPO:    {tps['trl']:.0f} tokens/s")
    print(f"ratio tether/TRL: {tps['tether'] / tps['trl']:.2f}")
    if args.device.startswith("cuda"):
        step_s = sum(times["tether"]) / len(times["tether"])
        print(
            f"tether MFU: {mfu_flops / step_s / (args.peak_tflops * 1e12):.1%} "
            f"(6*N*T FLOPs, peak {args.peak_tflops} TFLOPs)"
        )


if __name__ == "__main__":
    main()
