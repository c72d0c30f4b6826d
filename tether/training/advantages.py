"""Advantage estimators shared by the algorithms.

* ``group_advantages`` (GRPO): ``A_i = (r_i - mean_g(r)) / (std_g(r) + eps)`` over the
  samples ``i`` of group ``g`` (``scale="none"`` drops the division, as Dr. GRPO). A
  group whose rewards are all equal gives exactly zero advantage; such groups are
  counted (``degenerate_groups``) so a run can report them.
* ``token_returns`` (REINFORCE++): per-token reward ``r_t = -beta * kl_t`` plus the sample
  reward on its last trained token, return ``G_t = sum_{s>=t} r_s`` over trained tokens.
* ``whiten``: masked batch normalisation ``(x - mean) / (std + eps)``.
* ``gae`` (PPO): ``delta_t = r_t + gamma V_{t+1} - V_t``, ``A_t = delta_t + gamma lambda A_{t+1}``
  over the trained tokens of a sequence (tool/prompt tokens in between are skipped).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class GroupAdvantages:
    """Per-sample advantages and the group statistics the trainer reports."""

    advantages: torch.Tensor
    n_groups: int
    degenerate_groups: int
    degenerate_samples: int


def group_advantages(
    rewards: torch.Tensor, group_ids: torch.Tensor, *, scale: str = "std", eps: float = 1e-6
) -> GroupAdvantages:
    """GRPO's group-normalised advantages (see module doc); ``scale`` is ``"std"`` or ``"none"``."""
    if scale not in ("std", "none"):
        raise ValueError(f"scale must be 'std' or 'none', not {scale!r}")
    adv = torch.zeros_like(rewards, dtype=torch.float32)
    groups = torch.unique(group_ids)
    degenerate = degenerate_samples = 0
    for g in groups.tolist():
        sel = group_ids == g
        r = rewards[sel].float()
        if bool((r == r[0]).all()):
            degenerate += 1
            degenerate_samples += int(sel.sum())
            continue  # zero advantage, counted
        centred = r - r.mean()
        if scale == "std":
            centred = centred / (r.std(unbiased=False) + eps)
        adv[sel] = centred
    return GroupAdvantages(adv, len(groups), degenerate, degenerate_samples)


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` over the positions where ``mask`` is 1; 0 elsewhere."""
    m = mask.float()
    n = m.sum().clamp_min(1.0)
    mean = (x * m).sum() / n
    var = (((x - mean) * m) ** 2).sum() / n
    return (x - mean) / (var.sqrt() + eps) * m


def last_trained_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position with mask 1 in each row (-1 for a row without any)."""
    n, length = mask.shape
    pos = torch.arange(length).expand(n, length)
    return torch.where(mask > 0, pos, torch.full_like(pos, -1)).max(dim=1).values


def token_returns(rewards: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor | None, beta: float) -> torch.Tensor:
    """REINFORCE++ returns per token (gamma = 1), shape like ``mask``; 0 where mask is 0.

    ``rewards[i]`` is row i's scalar reward, placed on its last trained token; ``kl`` is
    the per-token estimate ``log pi_old - log pi_ref`` (or None).
    """
    m = mask.float()
    r = torch.zeros_like(m)
    if kl is not None and beta:
        r = r - beta * kl * m
    last = last_trained_index(m)
    rows = torch.nonzero(last >= 0).flatten()
    r[rows, last[rows]] += rewards[rows].float()
    returns = torch.flip(torch.cumsum(torch.flip(r, [1]), 1), [1])
    return returns * m


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the masked positions of each row.

    ``rewards`` and ``values`` are per token, shaped like ``mask``. Returns
    ``(advantages, returns)`` with ``returns = advantages + values``, 0 where mask is 0.
    """
    n, length = mask.shape
    adv = torch.zeros_like(values, dtype=torch.float32)
    for i in range(n):
        idx = torch.nonzero(mask[i] > 0).flatten()
        if len(idx) == 0:
            continue
        r, v = rewards[i, idx].float(), values[i, idx].float()
        running = torch.zeros((), dtype=torch.float32)
        out = torch.zeros_like(r)
        for t in range(len(idx) - 1, -1, -1):
            next_v = v[t + 1] if t + 1 < len(idx) else torch.zeros(())
            delta = r[t] + gamma * next_v - v[t]
            running = delta + gamma * lam * running
            out[t] = running
        adv[i, idx] = out
    returns = (adv + values.float()) * mask.float()
    return adv, returns
