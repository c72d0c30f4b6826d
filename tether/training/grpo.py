"""GRPO: group-relative policy optimisation, with DAPO's clip-higher and token-level aggregation.

Exact objective (minimised) for a batch of samples i with trained tokens t (loss mask m_it = 1):

    A_i      = (r_i - mean_{g(i)} r) / (std_{g(i)} r + eps)            group-normalised advantage
                                                                      (0 for a group of equal rewards)
    rho_it   = exp(log pi_theta(y_it | y_i<t) - log pi_old(y_it | y_i<t))
                                                                      pi_old = the stored ROLLOUT logprobs
    s_it     = min(rho_it * A_i, clip(rho_it, 1 - eps_low, 1 + eps_high) * A_i)
    kl_it    = exp(q_it) - q_it - 1,  q_it = log pi_ref - log pi_theta  (k3 estimator, >= 0)
    l_it     = -s_it + beta * kl_it

    loss = sum_{i,t} m_it * l_it / sum_{i,t} m_it                     agg = "token"   (DAPO)
    loss = mean_i ( sum_t m_it * l_it / sum_t m_it )                  agg = "sequence" (GRPO paper)

``eps_low = eps_high`` is the symmetric PPO clip; ``eps_high > eps_low`` is DAPO's clip-higher.
With ``beta = 0`` no reference model is needed. The normaliser (token count or sample
count) is that of the whole optimiser step, so gradient accumulation over micro-batches
gives exactly the gradient of the full-batch loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class GRPOConfig:
    """Hyper-parameters of the GRPO objective."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    beta: float = 0.0
    agg: str = "token"  # "token" | "sequence"
    scale: str = "std"  # advantage scale: "std" | "none"


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimate of KL(pi_theta || pi_ref) per token."""
    q = ref_logp - logp
    return torch.exp(q) - q - 1.0


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, eps_low: float, eps_high: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token ``(s, ratio, clipped)``: PPO's clipped surrogate ``s``, the ratio and whether the clip was active."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped_ratio = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    surrogate = torch.minimum(unclipped, clipped_ratio * adv)
    was_clipped = (clipped_ratio * adv < unclipped).float()
    return surrogate, ratio, was_clipped


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, agg: str, normaliser: float) -> torch.Tensor:
    """Sum ``per_token`` over masked tokens and divide per the aggregation mode.

    ``agg="token"``: ``normaliser`` is the number of trained tokens in the whole step.
    ``agg="sequence"``: each row is averaged over its own tokens, ``normaliser`` is the
    number of rows in the whole step.
    """
    if agg == "token":
        return (per_token * mask).sum() / max(normaliser, 1.0)
    if agg == "sequence":
        per_row = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
        return per_row.sum() / max(normaliser, 1.0)
    raise ValueError(f"agg must be 'token' or 'sequence', not {agg!r}")


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    cfg: GRPOConfig,
    normaliser: float,
    ref_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The GRPO loss of one micro-batch (module doc); ``adv`` is per token (the sample's A_i broadcast).

    Returns the loss and per-token tensors (``ratio``, ``clipped``, ``kl``) for metrics.
    """
    surrogate, ratio, clipped = clipped_surrogate(logp, old_logp, adv, cfg.eps_low, cfg.eps_high)
    per_token = -surrogate
    kl = torch.zeros_like(logp)
    if ref_logp is not None:
        kl = kl_k3(logp, ref_logp)
        if cfg.beta:
            per_token = per_token + cfg.beta * kl
    loss = aggregate(per_token, mask, cfg.agg, normaliser)
    return loss, {"ratio": ratio.detach(), "clipped": clipped, "kl": kl.detach()}
