"""Advantages and objectives, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import torch

from tether.training.advantages import gae, group_advantages, token_returns, whiten
from tether.training.grpo import GRPOConfig, grpo_loss, kl_k3
from tether.training.ppo import PPOConfig, ppo_loss
from tether.training.reinforce_pp import ReinforcePPConfig, reinforce_pp_advantages


def test_group_advantages_normalise_within_groups_and_count_equal_groups() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5, 0.5, 2.0, 2.0])
    groups = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    ga = group_advantages(rewards, groups, eps=0.0)
    # group 0: mean 0.5, std 0.5 -> +1, -1; groups 1 and 2 have equal rewards -> 0
    assert ga.advantages.tolist() == [1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert (ga.n_groups, ga.degenerate_groups, ga.degenerate_samples) == (3, 2, 5)
    unscaled = group_advantages(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([0, 0, 0]), scale="none")
    assert unscaled.advantages.tolist() == [1.0, -1.0, 0.0]


def test_grpo_ratio_follows_the_rollout_logprobs() -> None:
    logp = torch.tensor([[0.0, -1.0, -2.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0]])
    adv = torch.tensor([[0.0, 1.0, 1.0]])
    cfg = GRPOConfig(eps_low=0.2, eps_high=0.2)
    # rollout logprobs equal to the policy's: ratio 1, loss = -mean(A) = -1
    loss, extra = grpo_loss(logp, logp.clone(), adv, mask, cfg, normaliser=2.0)
    assert math.isclose(float(loss), -1.0, rel_tol=1e-6)
    assert extra["ratio"][0, 1:].tolist() == [1.0, 1.0]
    # token 1 rolled out with logprob -1.5: ratio e^0.5 = 1.6487 > 1.2, clipped to 1.2 for A > 0
    old = torch.tensor([[0.0, -1.5, -2.0]])
    loss, extra = grpo_loss(logp, old, adv, mask, cfg, normaliser=2.0)
    assert math.isclose(float(extra["ratio"][0, 1]), math.exp(0.5), rel_tol=1e-6)
    assert math.isclose(float(loss), -(1.2 + 1.0) / 2, rel_tol=1e-6)
    assert extra["clipped"][0].tolist() == [0.0, 1.0, 0.0]
    # clip-higher (DAPO): eps_high 0.28 lets the ratio reach 1.28
    loss, _ = grpo_loss(logp, old, adv, mask, GRPOConfig(eps_low=0.2, eps_high=0.28), normaliser=2.0)
    assert math.isclose(float(loss), -(1.28 + 1.0) / 2, rel_tol=1e-6)
    # negative advantage: min picks the unclipped, larger-magnitude term
    loss, _ = grpo_loss(logp, old, -adv, mask, cfg, normaliser=2.0)
    assert math.isclose(float(loss), (math.exp(0.5) + 1.0) / 2, rel_tol=1e-6)
    # the gradient of the clipped token is zero; the unclipped token gets -A/normaliser * ratio
    lp = logp.clone().requires_grad_(True)
    loss, _ = grpo_loss(lp, old, adv, mask, cfg, normaliser=2.0)
    loss.backward()
    assert lp.grad is not None and lp.grad[0].tolist() == [0.0, 0.0, -0.5]


def test_grpo_sequence_aggregation_and_kl_term() -> None:
    logp = torch.tensor([[-1.0, -1.0, 0.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([[1.0, 1.0, 0.0], [-1.0, -1.0, -1.0]]) * mask
    seq, _ = grpo_loss(logp, logp, adv, mask, GRPOConfig(agg="sequence"), normaliser=2.0)
    assert math.isclose(float(seq), 0.0, abs_tol=1e-7)  # (-1 + 1) / 2
    tok, _ = grpo_loss(logp, logp, adv, mask, GRPOConfig(agg="token"), normaliser=5.0)
    assert math.isclose(float(tok), (-2 + 3) / 5, rel_tol=1e-6)
    ref = logp - 0.1  # k3 = e^-0.1 + 0.1 - 1 per token
    k3 = math.exp(-0.1) + 0.1 - 1
    assert math.isclose(float(kl_k3(logp, ref)[0, 0]), k3, rel_tol=1e-5)
    with_kl, extra = grpo_loss(logp, logp, adv, mask, GRPOConfig(beta=0.5), normaliser=5.0, ref_logp=ref)
    assert math.isclose(float(with_kl), (-2 + 3) / 5 + 0.5 * k3, rel_tol=1e-5)


def test_reinforce_pp_returns_put_reward_on_last_token_and_whiten() -> None:
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    kl = torch.full((2, 4), 0.5)
    g = token_returns(torch.tensor([1.0, 0.0]), mask, kl, beta=0.1)
    # row 0: r = [-, -0.05, 1-0.05]; returns [-, 0.9, 0.95]; row 1: tokens 1 and 3 -> [-0.1, -0.05]
    assert torch.allclose(g, torch.tensor([[0.0, 0.9, 0.95, 0.0], [0.0, -0.1, 0.0, -0.05]]))
    adv = reinforce_pp_advantages(
        torch.tensor([1.0, 0.0]), mask, torch.zeros(2, 4), torch.full((2, 4), -0.5), ReinforcePPConfig(beta=0.1)
    )
    vals = adv[mask > 0]
    assert math.isclose(float(vals.mean()), 0.0, abs_tol=1e-6)
    assert math.isclose(float(vals.std(unbiased=False)), 1.0, rel_tol=1e-4)
    assert torch.equal(whiten(g, mask)[mask == 0], torch.zeros(4))


def test_gae_by_hand() -> None:
    mask = torch.tensor([[1.0, 0.0, 1.0]])  # a tool token in the middle is skipped
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 9.0, 0.25]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # t=2: delta = 1 - 0.25 = 0.75; t=0: delta = 0 + 0.25 - 0.5 = -0.25, A = -0.25 + 0.5 * 0.75 = 0.125
    assert torch.allclose(adv, torch.tensor([[0.125, 0.0, 0.75]]))
    assert torch.allclose(ret, torch.tensor([[0.625, 0.0, 1.0]]))


def test_ppo_value_loss_is_clipped() -> None:
    z = torch.zeros(1, 2)
    mask = torch.tensor([[0.0, 1.0]])
    values = torch.tensor([[0.0, 1.0]], requires_grad=True)
    old_values = torch.tensor([[0.0, 0.0]])
    returns = torch.tensor([[0.0, 2.0]])
    cfg = PPOConfig(value_clip=0.2, value_coef=1.0)
    loss, extra = ppo_loss(z, z, z, values, old_values, returns, mask, cfg, normaliser=1.0)
    # unclipped (1-2)^2 = 1, clipped (0.2-2)^2 = 3.24 -> max = 3.24, times 1/2
    assert math.isclose(float(extra["value_loss"]), 1.62, rel_tol=1e-6)
    assert math.isclose(float(loss.detach()), 1.62, rel_tol=1e-6)
