"""Rollout throughput through tether against a bare AsyncOpenAI client, same vLLM server, same run.

tether: ``tether.rollout`` of N concurrent calc episodes through the ``openai:`` backend
(LangGraph agent, tool execution, SQLite store, token ids + logprobs on every turn).
Every chat request tether sends is recorded (messages + sampling parameters + vLLM
fields). Bare: the ``openai`` SDK's ``AsyncOpenAI`` replays exactly those requests,
each episode's turns in order and N episodes at once, with nothing else around it.

Figure: completion tokens per second (tether / bare), alternating tether and bare
``--rounds`` times (after ``--warmup`` uncounted rounds) and comparing the totals.
Prefix caching is off on the server so that later runs do not profit from earlier ones. Target (issue 4): >= 0.9.

Also measures tool-call validity on calc: the fraction of tool calls that parse and
validate, unconstrained vs constrained (``--validity``).

    python bench/rollout_throughput.py [--url http://127.0.0.1:PORT/v1 --name smollm2]
        [--episodes 16] [--max-tokens 64] [--rounds 2] [--validity 16] [--json]

Without ``--url`` it starts ``tether serve-model``'s server itself (needs ``.venv-vllm``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

import tether
from tether.models.openai_compat import OpenAIModel
from tether.serving.server import VLLMServer
from tether.suites import get_suite
from tether.tools.calls import parse_tool_calls
from tether.types import Episode, SamplingParams


class RecordingModel(OpenAIModel):
    """An ``OpenAIModel`` that keeps every request body it sends, per episode (by first user message)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bodies: list[dict[str, Any]] = []
        self.cpu_s = 0.0

    def _body(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        body = super()._body(*args, **kwargs)
        self.bodies.append(body)
        return body


def episodes_of(bodies: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group recorded bodies by episode (same system + first user message), turns in order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for body in bodies:
        key = json.dumps(body["messages"][:2])
        groups.setdefault(key, []).append(body)
    return list(groups.values())


async def run_tether(url: str, name: str, n: int, max_tokens: int, seed: int) -> tuple[float, int, RecordingModel]:
    """N calc episodes through tether; returns (seconds, completion tokens, the recording model).

    The agent (store, migrations, graph) is built before the clock starts: the figure is
    the steady-state cost of episodes, not of a one-time setup.
    """
    model = RecordingModel(url, name, constrained=False)
    tasks = get_suite("calc").tasks(n=n, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        async with tether.Agent(
            suite="calc",
            model=model,
            store=f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
            max_turns=3,
            sampling=SamplingParams(temperature=0.0, max_tokens=max_tokens),
            checkpoint=False,
        ) as agent:
            started = time.perf_counter()
            cpu = time.process_time()
            episodes: list[Episode] = await asyncio.gather(*[agent.run(t) for t in tasks])
            seconds = time.perf_counter() - started
            model.cpu_s = time.process_time() - cpu
    await model.aclose()
    errors = [e.error for e in episodes if e.status == "error"]
    if errors:
        raise SystemExit(f"tether episodes failed: {errors[0]}")
    tokens = sum(len(s.token_ids) for e in episodes for s in e.model_steps)
    return seconds, tokens, model


async def run_bare(url: str, groups: list[list[dict[str, Any]]]) -> tuple[float, int, float]:
    """Replay the recorded requests with a bare AsyncOpenAI client; returns (seconds, tokens, client CPU s)."""
    client = AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=600)
    vllm_fields = ("return_token_ids", "response_format")

    async def one_episode(bodies: list[dict[str, Any]]) -> int:
        total = 0
        for body in bodies:
            std = {k: v for k, v in body.items() if k not in vllm_fields}
            extra = {k: body[k] for k in vllm_fields if k in body}
            resp = await client.chat.completions.create(**std, extra_body=extra)
            total += resp.usage.completion_tokens if resp.usage else 0
        return total

    started = time.perf_counter()
    cpu = time.process_time()
    counts = await asyncio.gather(*[one_episode(g) for g in groups])
    seconds = time.perf_counter() - started
    cpu_s = time.process_time() - cpu
    await client.close()
    return seconds, sum(counts), cpu_s


async def validity(url: str, name: str, n: int, max_tokens: int, seed: int) -> dict[str, Any]:
    """Tool-call validity on calc episodes: unconstrained, constrained (auto) and constrained (required)."""
    out: dict[str, Any] = {}
    suite = get_suite("calc")
    tasks = suite.tasks(n=n, seed=seed)
    for label, constrained, choice in (("free", False, "auto"), ("auto", True, "auto"), ("required", True, "required")):
        model = OpenAIModel(url, name, constrained=constrained, tool_choice=choice)  # type: ignore[arg-type]
        with tempfile.TemporaryDirectory() as tmp:
            episodes = await tether.rollout(
                tasks,
                suite="calc",
                model=model,
                store=f"sqlite+aiosqlite:///{Path(tmp) / 'validity.db'}",
                concurrency=n,
                max_turns=3,
                sampling=SamplingParams(temperature=1.0, max_tokens=max_tokens, seed=seed),
                checkpoint=False,
                constrained=constrained,
            )
        await model.aclose()
        turns = attempted = valid = 0
        for e in episodes:
            toolset = suite.toolset(e.task) if e.task else None
            for s in e.model_steps:
                turns += 1
                parsed = parse_tool_calls(s.text, toolset)
                attempted += len(parsed.calls) + len(parsed.errors)
                valid += len(parsed.calls)
        out[label] = {
            "turns": turns,
            "calls_attempted": attempted,
            "calls_valid": valid,
            "valid_fraction": (valid / attempted) if attempted else None,
            "accuracy": suite.summarize(episodes).get("accuracy"),
            "errors": sum(e.status == "error" for e in episodes),
            "first_error": next((e.error for e in episodes if e.error), None),
        }
    return out


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    server: VLLMServer | None = None
    url, name = args.url, args.name
    result: dict[str, Any] = {"episodes": args.episodes, "max_tokens": args.max_tokens}
    try:
        if url is None:
            server = VLLMServer(args.model, extra_args=["--no-enable-prefix-caching"])
            server.start()
            result["server_ready_s"] = await asyncio.to_thread(
                server.wait_ready, 900.0, lambda s: print(s, file=sys.stderr)
            )
            url, name = server.base_url, server.served_name
        for w in range(args.warmup):  # not counted: first requests, allocator and import warm-up
            _, _, model = await run_tether(url, name, args.episodes, args.max_tokens, seed=1000 + w)
            await run_bare(url, episodes_of(model.bodies))
        tether_s = tether_tok = bare_s = bare_tok = 0.0
        rounds = []
        for r in range(args.rounds):
            s, tok, model = await run_tether(url, name, args.episodes, args.max_tokens, seed=r)
            bs, btok, bcpu = await run_bare(url, episodes_of(model.bodies))
            rounds.append(
                {
                    "tether_tok_s": tok / s,
                    "bare_tok_s": btok / bs,
                    "tether_tokens": tok,
                    "bare_tokens": btok,
                    "requests": len(model.bodies),
                    "tether_client_cpu_s": model.cpu_s,
                    "bare_client_cpu_s": bcpu,
                }
            )
            tether_s, tether_tok, bare_s, bare_tok = tether_s + s, tether_tok + tok, bare_s + bs, bare_tok + btok
            print(f"round {r}: tether {tok / s:.1f} tok/s, bare {btok / bs:.1f} tok/s", file=sys.stderr)
        result["rounds"] = rounds
        if rounds:
            result["tether_tok_s"] = tether_tok / tether_s
            result["bare_tok_s"] = bare_tok / bare_s
            result["ratio"] = result["tether_tok_s"] / result["bare_tok_s"]
        if args.validity:
            result["validity"] = await validity(url, name, args.validity, args.max_tokens, seed=0)
    finally:
        if server is not None:
            server.stop()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=None, help="an already running server's /v1 URL (default: start one)")
    p.add_argument("--name", default="smollm2", help="served model name (with --url)")
    p.add_argument("--model", default="local", help="model to serve when starting a server")
    p.add_argument("--episodes", type=int, default=16, help="concurrent episodes per round")
    p.add_argument("--max-tokens", type=int, default=64, help="max tokens per turn")
    p.add_argument("--rounds", type=int, default=3, help="alternating tether/bare rounds")
    p.add_argument("--warmup", type=int, default=1, help="uncounted tether/bare rounds first")
    p.add_argument("--validity", type=int, default=16, help="episodes per validity arm (0 = skip)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args()
    result = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    if "ratio" in result:
        print(f"tether {result['tether_tok_s']:.1f} tok/s, bare AsyncOpenAI {result['bare_tok_s']:.1f} tok/s")
        print(f"ratio tether/bare: {result['ratio']:.3f} (target >= 0.9)")
    for label, v in (result.get("validity") or {}).items():
        print(
            f"validity {label:8s}: {v['calls_valid']}/{v['calls_attempted']} tool calls valid "
            f"over {v['turns']} turns (accuracy {v['accuracy']})"
        )


if __name__ == "__main__":
    main()
