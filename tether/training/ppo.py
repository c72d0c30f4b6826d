"""PPO with a value head, GAE and a clipped value loss.

Exact objective (minimised), for samples i with scalar reward R_i and trained tokens t
(the tokens the policy sampled; tool and prompt tokens in between are skipped):

    V_it     = w . h_i,t-1 + b                       value head on the hidden state that
                                                     predicts token t
    r_it     = -beta * (log pi_old - log pi_ref)(y_it) + [t = last trained token] * R_i
    delta_it = r_it + gamma V_old,i,t+1 - V_old,it   (V after the last token = 0)
    A_it     = sum_k (gamma lambda)^k delta_i,t+k     GAE, then whitened over the batch
    G_it     = A_it (before whitening) + V_old,it    value target
    rho_it   = exp(log pi_theta(y_it) - log pi_old(y_it))     pi_old = stored rollout logprobs
    L_pi     = -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A)
    L_V      = 1/2 max((V - G)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - G)^2)
    loss     = sum_{i,t} m_it (L_pi + c_v L_V) / sum_{i,t} m_it

``V_old`` are the value head's outputs before the update (computed once per step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tether.training.grpo import aggregate, clipped_surrogate


@dataclass
class PPOConfig:
    """Hyper-parameters of PPO."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    value_clip: float = 0.2
    value_coef: float = 0.5
    gamma: float = 1.0
    lam: float = 0.95
    beta: float = 0.0


class ValueHead(nn.Module):
    """A linear value head on the last hidden states: one value per position."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Values aligned to tokens: ``out[:, t]`` is the value before sampling token t (``out[:, 0] = 0``)."""
        v = self.linear(hidden.float()).squeeze(-1)
        return torch.cat([torch.zeros_like(v[:, :1]), v[:, :-1]], dim=1)


def ppo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cfg: PPOConfig,
    normaliser: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped policy loss plus the clipped value loss for one micro-batch."""
    surrogate, ratio, clipped = clipped_surrogate(logp, old_logp, adv, cfg.eps_low, cfg.eps_high)
    v_clipped = old_values + torch.clamp(values - old_values, -cfg.value_clip, cfg.value_clip)
    vf = 0.5 * torch.maximum((values - returns) ** 2, (v_clipped - returns) ** 2)
    policy = aggregate(-surrogate, mask, "token", normaliser)
    value = aggregate(vf, mask, "token", normaliser)
    vf_clipped = ((v_clipped - returns) ** 2 > (values - returns) ** 2).float()
    return policy + cfg.value_coef * value, {
        "ratio": ratio.detach(),
        "clipped": clipped,
        "value_loss": value.detach(),
        "vf_clipped": vf_clipped.detach(),
    }
