"""Sandbox latency: cold start and warm-pool exec per backend, against plain subprocess in the same run.

    .venv/bin/python bench/sandbox_latency.py [--backends bwrap,docker] [--n 200] [--concurrent 64]

Prints p50/p99 (ms) and the ratio to plain subprocess measured in the same run (for warm
exec, interleaved call by call so both see the same machine load), then starts
``--concurrent`` sandboxes at once and runs a command in each. Targets (from issue 3):
bwrap warm exec <= 5x plain subprocess; docker warm exec p50 < 50 ms; 64 concurrent
sandboxes without errors.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from tether.sandbox.base import SandboxLimits
from tether.sandbox.pool import SandboxPool
from tether.sandbox.registry import backend_unavailable, sandbox_factory


def pct(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) in ms."""
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))] * 1000


async def plain_subprocess(n: int) -> list[float]:
    """Baseline: ``true`` as a plain asyncio subprocess, output captured like the sandbox does."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "true", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        await proc.communicate()
        out.append(time.perf_counter() - t)
    return out


async def cold_starts(backend: str, n: int) -> list[float]:
    """Start a sandbox, run ``true``, close it."""
    factory = sandbox_factory(backend)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        sb = await factory.start()
        await sb.exec(["true"])
        out.append(time.perf_counter() - t)
        await sb.close()
    return out


async def warm_execs(backend: str, n: int) -> tuple[list[float], list[float]]:
    """``true`` in a sandbox from a warm pool, interleaved with plain subprocesses (same load for both)."""
    sandbox_times, plain_times = [], []
    async with SandboxPool(sandbox_factory(backend), size=1) as pool, pool.acquire() as sb:
        for _ in range(5):
            await sb.exec(["true"])
        for _ in range(n):
            t = time.perf_counter()
            r = await sb.exec(["true"])
            sandbox_times.append(time.perf_counter() - t)
            assert r.exit_code == 0, r
            plain_times += await plain_subprocess(1)
    return sandbox_times, plain_times


async def concurrent(backend: str, k: int) -> tuple[int, float]:
    """Start ``k`` sandboxes at once, run a command in each; return (errors, seconds)."""
    factory = sandbox_factory(backend, SandboxLimits(memory_mb=128))
    t = time.perf_counter()

    async def one(i: int) -> bool:
        sb = await factory.start()
        try:
            r = await sb.exec(["sh", "-c", f"echo {i}; sleep 0.2"])
            return r.stdout == f"{i}\n"
        finally:
            await sb.close()

    results = await asyncio.gather(*(one(i) for i in range(k)), return_exceptions=True)
    errors = sum(1 for r in results if r is not True)
    return errors, time.perf_counter() - t


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="bwrap,docker")
    ap.add_argument("--n", type=int, default=200, help="warm execs per backend")
    ap.add_argument("--cold", type=int, default=15, help="cold starts per backend")
    ap.add_argument("--concurrent", type=int, default=64)
    args = ap.parse_args()

    base = await plain_subprocess(args.n)
    b50, b99 = pct(base, 50), pct(base, 99)
    print(f"{'what':32s} {'p50 ms':>9s} {'p99 ms':>9s} {'p50 / plain':>12s}")
    print(f"{'plain subprocess (true)':32s} {b50:9.2f} {pct(base, 99):9.2f} {1.0:12.2f}")
    verdicts = []
    for backend in args.backends.split(","):
        why = backend_unavailable(backend)
        if why:
            print(f"{backend}: skipped ({why})")
            continue
        cold = await cold_starts(backend, args.cold)
        c50, c99 = pct(cold, 50), pct(cold, 99)
        print(f"{backend + ' cold start + exec':32s} {c50:9.2f} {c99:9.2f} {c50 / b50:12.2f}")
        warm, plain = await warm_execs(backend, args.n)
        w50, p50 = pct(warm, 50), pct(plain, 50)
        print(f"{backend + ' warm-pool exec':32s} {w50:9.2f} {pct(warm, 99):9.2f} {w50 / p50:12.2f}")
        print(f"{'  plain, interleaved with it':32s} {p50:9.2f} {pct(plain, 99):9.2f} {1.0:12.2f}")
        errors, secs = await concurrent(backend, args.concurrent)
        print(f"{backend + f' {args.concurrent} concurrent':32s} {secs * 1000:9.0f} {'':9s} errors={errors}")
        if backend == "bwrap":
            verdicts.append(("bwrap warm exec <= 5x plain subprocess", w50 / p50 <= 5.0, f"{w50 / p50:.2f}x"))
        if backend == "docker":
            verdicts.append(("docker warm exec p50 < 50 ms", w50 < 50.0, f"{w50:.2f} ms"))
        verdicts.append((f"{backend}: {args.concurrent} concurrent sandboxes, no errors", errors == 0, f"{errors}"))
    print(f"(baseline spread: stdev {statistics.pstdev(base) * 1000:.2f} ms, p99 {b99:.2f} ms)")
    for name, ok, value in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value}")


if __name__ == "__main__":
    asyncio.run(main())
