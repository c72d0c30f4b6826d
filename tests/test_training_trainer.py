"""The trainer on a tiny random model: LoRA and full steps, stored logprobs, checkpoint/resume."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from tether.models.testing import tiny_model_dir
from tether.store import InMemoryStore
from tether.training.batch import build_batch, select_episodes
from tether.training.grpo import GRPOConfig
from tether.training.trainer import Trainer, TrainerConfig, token_logprobs
from tether.types import Episode, Message, Step, Task, ToolResult

VOCAB = 300


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("tiny"))


def _load(model_dir: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(model_dir))


def _episode(rng: random.Random, run: str, task: str, reward: float) -> Episode:
    p0 = [1] + [rng.randrange(3, VOCAB) for _ in range(6)]
    t0 = [rng.randrange(3, VOCAB) for _ in range(4)]
    p1 = p0 + t0 + [rng.randrange(3, VOCAB) for _ in range(3)]
    t1 = [rng.randrange(3, VOCAB) for _ in range(3)] + [2]
    steps = [
        Step(index=0, role="prompt", messages=[Message(role="user", content="q")]),
        Step(index=1, role="assistant", token_ids=t0, logprobs=[-3.0] * 4, loss_mask=[1] * 4, prompt_token_ids=p0),
        Step(index=2, role="tool", tool_results=[ToolResult(call_id="c", name="x", content="y")]),
        Step(index=3, role="assistant", token_ids=t1, logprobs=[-3.0] * 4, loss_mask=[1] * 4, prompt_token_ids=p1),
    ]
    return Episode(
        run_id=run,
        suite="s",
        task_id=task,
        task=Task(id=task, suite="s", prompt="q"),
        status="done",
        rewards={"total": reward},
        steps=steps,
    )


def _episodes(seed: int) -> list[Episode]:
    rng = random.Random(seed)
    return [_episode(rng, "r", f"t{i // 4}", float(rng.random() < 0.5) + (i % 4) * 0.1) for i in range(8)]


def _cfg(**kw: object) -> TrainerConfig:
    base: dict[str, object] = {"lr": 1e-3, "micro_batch": 3, "seed": 7}
    base.update(kw)
    return TrainerConfig(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("lora", [False, True])
def test_full_and_lora_steps_update_the_right_weights(model_dir: Path, lora: bool) -> None:
    model = _load(model_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, _cfg(lora=lora, lora_r=4, lora_alpha=8, lora_targets=["q_proj", "v_proj"]), pad_id=2)
    m = trainer.train_step(build_batch(_episodes(0)))
    assert m["samples"] == 8 and m["groups"] == 2 and m["trained_tokens"] == 64
    for key in ("loss", "grad_norm", "entropy", "clip_frac", "kl_rollout", "tokens_per_s", "logprob_mismatch"):
        assert math.isfinite(m[key]), key
    assert m["grad_norm"] > 0 and m["tokens_per_s"] > 0
    if lora:
        merged = trainer.merged_state()
        assert set(merged) == set(before)
        assert not torch.equal(
            merged["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"]
        )
        assert torch.equal(merged["model.layers.0.mlp.up_proj.weight"], before["model.layers.0.mlp.up_proj.weight"])
        # the base weights themselves are untouched (the adapter holds the update)
        base = trainer.base_model.state_dict()
        assert torch.equal(
            base["model.layers.0.self_attn.q_proj.base_layer.weight"], before["model.layers.0.self_attn.q_proj.weight"]
        )
    else:
        after = model.state_dict()
        assert not torch.equal(after["model.layers.0.mlp.up_proj.weight"], before["model.layers.0.mlp.up_proj.weight"])


async def test_changing_stored_rollout_logprobs_changes_the_grpo_ratio(model_dir: Path) -> None:
    """ratio = exp(log pi_theta - log pi_rollout): shift the stored logprobs by -d, the ratio becomes e^d."""
    model = _load(model_dir)
    store = InMemoryStore()
    ep = _episodes(1)[0]
    # set the stored rollout logprobs to the model's own logprobs of the sampled tokens
    seq = build_batch([ep]).sequences[0]
    with torch.no_grad():
        lp = token_logprobs(model(input_ids=torch.tensor([seq.input_ids])).logits, torch.tensor([seq.input_ids]))[0]
    pos = 0
    for step in ep.model_steps:
        start = len(step.prompt_token_ids)
        step.logprobs = [float(x) for x in lp[start : start + len(step.token_ids)]]
        pos = start
    assert pos > 0

    async def ratio_after_storing(shift: float) -> float:
        e = ep.model_copy(deep=True)
        e.id = f"e{shift}"
        for step in e.model_steps:
            step.logprobs = [x - shift for x in step.logprobs]
        await store.start_episode(e)
        for s in e.steps:
            await store.add_step(e.id, s)
        await store.finish_episode(e)
        [stored] = [x for x in await select_episodes(store, run_id="r") if x.id == e.id]
        trainer = Trainer(_load(model_dir), _cfg(lr=0.0, grpo=GRPOConfig(eps_low=10.0, eps_high=10.0)), pad_id=2)
        metrics = trainer.train_step(build_batch([stored]))
        assert math.isclose(metrics["logprob_mismatch"], abs(shift), abs_tol=2e-4)
        return metrics["ratio_mean"]

    assert math.isclose(await ratio_after_storing(0.0), 1.0, abs_tol=1e-4)
    assert math.isclose(await ratio_after_storing(0.3), math.exp(0.3), rel_tol=1e-4)
    assert math.isclose(await ratio_after_storing(-0.2), math.exp(-0.2), rel_tol=1e-4)


@pytest.mark.parametrize("algo", ["grpo", "reinforce_pp", "ppo"])
def test_resume_from_checkpoint_gives_identical_next_step(model_dir: Path, tmp_path: Path, algo: str) -> None:
    def timeless(m: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in m.items() if k not in ("tokens_per_s", "step_time_s")}

    b1, b2 = build_batch(_episodes(2)), build_batch(_episodes(3))
    cfg = _cfg(algo=algo, lora=algo == "grpo", lora_r=4, lora_alpha=8, lora_dropout=0.1, lora_targets=["q_proj"])
    a = Trainer(_load(model_dir), cfg, pad_id=2)
    a.train_step(b1)
    a.save_checkpoint(tmp_path / "ckpt")
    torch.manual_seed(12345)  # the process goes on with other randomness before it is killed
    expected = timeless(a.train_step(b2))

    b = Trainer(_load(model_dir), cfg, pad_id=2)
    b.load_checkpoint(tmp_path / "ckpt")
    assert b.step == 1
    got = timeless(b.train_step(b2))
    assert got == expected
    assert b.step == 2


def test_beta_uses_a_reference_and_reports_kl(model_dir: Path) -> None:
    trainer = Trainer(_load(model_dir), _cfg(algo="reinforce_pp"), pad_id=2)  # beta 0.01 by default
    assert trainer.ref_model is not None
    trainer.train_step(build_batch(_episodes(4)))
    m = trainer.train_step(build_batch(_episodes(4)))
    assert m["kl"] > 0  # the policy moved away from the frozen reference


def test_trainer_logprobs_use_the_sampling_temperature(model_dir: Path) -> None:
    """Rollout logprobs drawn at T=0.5 are matched exactly by a trainer told T=0.5 (ratio 1)."""
    model = _load(model_dir)
    ep = _episodes(5)[0]
    seq = build_batch([ep]).sequences[0]
    ids = torch.tensor([seq.input_ids])
    with torch.no_grad():
        lp = token_logprobs(model(input_ids=ids).logits / 0.5, ids)[0]
    for step in ep.model_steps:
        start = len(step.prompt_token_ids)
        step.logprobs = [float(x) for x in lp[start : start + len(step.token_ids)]]
    tempered = Trainer(model, _cfg(lr=0.0, temperature=0.5), pad_id=2).train_step(build_batch([ep]))
    assert tempered["logprob_mismatch"] < 2e-4 and math.isclose(tempered["ratio_mean"], 1.0, abs_tol=2e-4)
    plain = Trainer(_load(model_dir), _cfg(lr=0.0), pad_id=2).train_step(build_batch([ep]))
    assert plain["logprob_mismatch"] > 0.01
