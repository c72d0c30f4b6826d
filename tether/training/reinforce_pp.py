"""REINFORCE++: batch-normalised returns with a token-level KL penalty and PPO clipping.

Exact objective (minimised), for samples i with scalar reward R_i and trained tokens t:

    k_it   = log pi_old(y_it) - log pi_ref(y_it)            token-level KL estimate (no gradient;
                                                            pi_old = the stored rollout logprobs)
    r_it   = -beta * k_it + [t = last trained token of i] * R_i
    G_it   = sum_{s >= t, m_is = 1} r_is                    return, gamma = 1
    A_it   = (G_it - mean_batch G) / (std_batch G + eps)    normalised over every trained token
                                                            of the whole batch
    rho_it = exp(log pi_theta(y_it) - log pi_old(y_it))
    loss   = -sum_{i,t} m_it * min(rho_it A_it, clip(rho_it, 1 - eps_low, 1 + eps_high) A_it)
             / sum_{i,t} m_it

No critic and no groups are needed; ``beta = 0`` drops the reference model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tether.training.advantages import token_returns, whiten
from tether.training.grpo import aggregate, clipped_surrogate


@dataclass
class ReinforcePPConfig:
    """Hyper-parameters of REINFORCE++."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    beta: float = 0.01


def reinforce_pp_advantages(
    rewards: torch.Tensor,
    mask: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    cfg: ReinforcePPConfig,
) -> torch.Tensor:
    """Per-token advantages ``A_it`` of the whole batch (module doc); rows are sequences."""
    kl = (old_logp - ref_logp) if ref_logp is not None else None
    returns = token_returns(rewards, mask, kl, cfg.beta)
    return whiten(returns, mask)


def reinforce_pp_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    cfg: ReinforcePPConfig,
    normaliser: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped REINFORCE++ loss of one micro-batch with precomputed token advantages."""
    surrogate, ratio, clipped = clipped_surrogate(logp, old_logp, adv, cfg.eps_low, cfg.eps_high)
    loss = aggregate(-surrogate, mask, "token", normaliser)
    return loss, {"ratio": ratio.detach(), "clipped": clipped}
