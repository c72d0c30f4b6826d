"""Benchmark LocalModel: load time, single-request greedy tokens/s, batched vs sequential throughput.

Usage: ``python bench/models_local.py [--model local|local:/path] [--tokens 64] [--concurrency 16] [--threads N]``

Prints one JSON object. Every request decodes exactly ``--tokens`` tokens (the stop
token ids are cleared for the run, so an early ``<|im_end|>`` does not shorten it),
and the batched figure is compared with sequential requests measured in the same run.
Tokens per CPU-second (process CPU time) are printed beside wall-clock figures because
on a shared machine the wall clock mostly measures the other tenants.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import torch

from tether.models import load_model
from tether.models.local import LocalModel
from tether.types import Message, SamplingParams

QUESTIONS = [
    "Write a short story about a robot who learns to paint.",
    "Explain how photosynthesis works.",
    "List some tips for learning a new language.",
    "Describe the water cycle.",
    "Why is the sky blue?",
    "Write a poem about the sea.",
    "How do computers store numbers?",
    "What are the benefits of exercise?",
]


def chat(i: int) -> list[Message]:
    return [Message(role="user", content=QUESTIONS[i % len(QUESTIONS)])]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: LocalModel's choice)")
    parser.add_argument("--sequential", type=int, default=0, help="sequential requests to time (default: concurrency)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    model = load_model(args.model, **({"threads": args.threads} if args.threads else {}))
    assert isinstance(model, LocalModel)
    load_s = time.perf_counter() - t0
    params = SamplingParams(temperature=0.0, max_tokens=args.tokens)
    t0 = time.perf_counter()
    await model.generate(chat(0), SamplingParams(max_tokens=1))
    first_call_s = time.perf_counter() - t0
    model.stop_token_ids = frozenset()  # decode exactly --tokens tokens per request

    t0, c0 = time.perf_counter(), time.process_time()
    one = await model.generate(chat(0), params)
    single_s, single_cpu = time.perf_counter() - t0, time.process_time() - c0

    n_seq = args.sequential or args.concurrency
    t0, c0 = time.perf_counter(), time.process_time()
    seq = [await model.generate(chat(i), params) for i in range(n_seq)]
    seq_s, seq_cpu = time.perf_counter() - t0, time.process_time() - c0
    seq_tokens = sum(len(c.token_ids) for c in seq)

    t0, c0 = time.perf_counter(), time.process_time()
    batch = await asyncio.gather(*(model.generate(chat(i), params) for i in range(args.concurrency)))
    batch_s, batch_cpu = time.perf_counter() - t0, time.process_time() - c0
    batch_tokens = sum(len(c.token_ids) for c in batch)
    same = all(b.token_ids == s.token_ids for b, s in zip(batch, seq, strict=False))

    seq_tps = seq_tokens / seq_s
    batch_tps = batch_tokens / batch_s
    print(
        json.dumps(
            {
                "model": model.name,
                "load_s": round(load_s, 2),
                "first_call_s": round(first_call_s, 2),
                "single_tokens": len(one.token_ids),
                "single_tokens_per_s": round(len(one.token_ids) / single_s, 2),
                "single_tokens_per_cpu_s": round(len(one.token_ids) / single_cpu, 2),
                "torch_threads": torch.get_num_threads(),
                "sequential_requests": n_seq,
                "sequential_tokens_per_s": round(seq_tps, 2),
                "sequential_tokens_per_cpu_s": round(seq_tokens / seq_cpu, 2),
                "concurrent_requests": args.concurrency,
                "concurrent_tokens_per_s": round(batch_tps, 2),
                "concurrent_tokens_per_cpu_s": round(batch_tokens / batch_cpu, 2),
                "batched_vs_sequential": round(batch_tps / seq_tps, 2),
                "batch_sizes": dict(model.batch_sizes),
                "batched_equals_sequential_greedy": same,
            }
        )
    )
    await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
