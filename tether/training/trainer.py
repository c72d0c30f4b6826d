"""The trainer: one optimiser step of GRPO, REINFORCE++ or PPO on a batch of stored episodes.

* LoRA (peft, injected in place so a model that shares the module sees the update) or
  full fine-tuning of a HF causal LM;
* gradient accumulation: the batch is split into micro-batches whose gradients add up to
  the full-batch gradient (normalisers are those of the whole step), then one AdamW step;
* bf16 autocast where the hardware supports it (``bf16="auto"``: CUDA with bf16);
* checkpoints hold the trainable weights, the value head, the optimiser state, the RNG
  states and the step, so a resumed run produces identical metrics for its next step;
* metrics per step: reward mean/std, advantage stats, degenerate groups, KL, entropy,
  clip fraction, loss, grad norm, tokens/s and the rollout-vs-trainer logprob mismatch
  (mean |log pi_trainer - log pi_rollout| over the sampled tokens, before the update).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tether.errors import UserError
from tether.training.advantages import gae, group_advantages, last_trained_index, whiten
from tether.training.batch import EpisodeBatch, TensorBatch, collate
from tether.training.grpo import GRPOConfig, grpo_loss, kl_k3
from tether.training.ppo import PPOConfig, ValueHead, ppo_loss
from tether.training.reinforce_pp import ReinforcePPConfig, reinforce_pp_advantages, reinforce_pp_loss

ALGOS = ("grpo", "reinforce_pp", "ppo")
CHECKPOINT_FILE = "trainer.pt"


@dataclass
class TrainerConfig:
    """Everything that defines a training run's updates (stored with each checkpoint)."""

    algo: str = "grpo"
    lr: float = 1e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    micro_batch: int = 4
    epochs: int = 1
    max_len: int | None = None
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: str | list[str] = "all-linear"
    bf16: str = "auto"  # "auto" | "on" | "off"
    seed: int = 0
    #: the rollout sampling temperature: the trainer's logprobs are those of ``softmax(logits / T)``,
    #: the distribution the stored rollout logprobs were drawn from
    temperature: float = 1.0
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    reinforce_pp: ReinforcePPConfig = field(default_factory=ReinforcePPConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise UserError(f"Unknown algorithm {self.algo!r}; use one of {', '.join(ALGOS)}.")
        if self.temperature <= 0:
            self.temperature = 1.0  # greedy rollouts: logprobs of the raw logits
        if self.micro_batch < 1 or self.epochs < 1:
            raise UserError("micro_batch and epochs must be at least 1.")

    @property
    def beta(self) -> float:
        """The KL coefficient of the chosen algorithm."""
        return float({"grpo": self.grpo.beta, "reinforce_pp": self.reinforce_pp.beta, "ppo": self.ppo.beta}[self.algo])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerConfig:
        """Inverse of ``to_dict``."""
        data = dict(data)
        data["grpo"] = GRPOConfig(**data.get("grpo", {}))
        data["reinforce_pp"] = ReinforcePPConfig(**data.get("reinforce_pp", {}))
        data["ppo"] = PPOConfig(**data.get("ppo", {}))
        return cls(**data)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is worthwhile on ``device`` (CUDA with native bf16)."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """``out[:, t] = log p(input_ids[:, t] | input_ids[:, :t])`` (``out[:, 0] = 0``), float32."""
    n, length, vocab = logits.shape
    lp = -F.cross_entropy(
        logits[:, :-1].reshape(-1, vocab).float(), input_ids[:, 1:].reshape(-1), reduction="none"
    ).view(n, length - 1)
    return torch.cat([torch.zeros_like(lp[:, :1]), lp], dim=1)


class Trainer:
    """Updates a HF causal LM from ``EpisodeBatch`` es with the configured algorithm.

    Args:
        model: a ``transformers`` causal LM (trained in place: with LoRA the adapters are
            injected into its modules, so another holder of the same module, e.g. a
            ``LocalModel``, samples from the updated policy).
        config: the run's ``TrainerConfig``.
        pad_id: the id used to pad sequences (never trained on).
    """

    def __init__(self, model: nn.Module, config: TrainerConfig, *, pad_id: int = 0) -> None:
        self.config = config
        self.pad_id = pad_id
        seed_everything(config.seed)
        self.base_model = model
        self.device = next(model.parameters()).device
        self.model: nn.Module
        if config.lora:
            from peft import LoraConfig, get_peft_model

            targets = config.lora_targets
            lcfg = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=targets,
                task_type="CAUSAL_LM",
            )
            self.model = get_peft_model(model, lcfg)
        else:
            self.model = model
            for p in self.model.parameters():
                p.requires_grad_(True)
        cfg_obj = getattr(model, "config", None)
        if cfg_obj is not None and hasattr(cfg_obj, "use_cache"):
            cfg_obj.use_cache = False
        self.ref_model: nn.Module | None = None
        if config.beta and not config.lora:
            self.ref_model = copy.deepcopy(model).eval()
            for p in self.ref_model.parameters():
                p.requires_grad_(False)
        self.value_head: ValueHead | None = None
        if config.algo == "ppo":
            hidden = int(getattr(cfg_obj, "hidden_size", 0) or 0)
            if not hidden:
                raise UserError("PPO needs a model config with hidden_size for its value head.")
            self.value_head = ValueHead(hidden).to(self.device)
        params = self.trainable_parameters()
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        self.autocast = config.bf16 == "on" or (config.bf16 == "auto" and bf16_supported(self.device))
        self.step = 0

    # ----- parameters -----

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser updates (LoRA adapters or all weights, plus the value head)."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.value_head is not None:
            params += list(self.value_head.parameters())
        return params

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Name -> tensor of every trainable weight of the policy (not the value head)."""
        return {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad}

    def merged_state(self) -> dict[str, torch.Tensor]:
        """The policy's full weights with LoRA merged, under the base model's parameter names."""
        if not self.config.lora:
            return {k: v.detach() for k, v in self.base_model.state_dict().items()}
        from peft.tuners.lora import LoraLayer

        deltas: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, module in self.base_model.named_modules():
                if isinstance(module, LoraLayer) and hasattr(module, "get_delta_weight"):
                    for adapter in module.active_adapters:
                        if adapter in module.lora_A:
                            delta = module.get_delta_weight(adapter)
                            key = f"{name}.weight"
                            deltas[key] = deltas[key] + delta if key in deltas else delta
            out: dict[str, torch.Tensor] = {}
            for k, v in self.base_model.state_dict().items():
                if "lora_" in k:
                    continue
                key = k.replace(".base_layer.", ".")
                out[key] = (v + deltas[key].to(v.dtype)) if key in deltas else v.detach()
        return out

    # ----- forward passes -----

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.autocast:
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                yield
        else:
            yield

    def _forward(
        self, model: nn.Module, tb: TensorBatch, hidden: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """``(logp, logits, output)``: per-token logprobs [n, L] (0 off the mask) and the logits
        at the trained positions only ([n_trained, V]; the LM head runs on nothing else)."""
        mask = tb.loss_mask > 0
        rows, cols = mask[:, 1:].nonzero(as_tuple=True)
        keep = torch.zeros_like(mask)
        keep[:, :-1] = mask[:, 1:]
        with self._autocast():
            out = model(
                input_ids=tb.input_ids,
                attention_mask=tb.attention_mask,
                output_hidden_states=hidden,
                use_cache=False,
                logits_to_keep=keep,
            )
        logits = out.logits
        if logits.dim() == 3 and tuple(logits.shape[:2]) == tuple(mask.shape):
            logits = logits[keep]  # a model that ignored logits_to_keep
        logits = logits.reshape(-1, logits.shape[-1])
        targets = tb.input_ids[rows, cols + 1]
        logits = logits.float()
        if self.config.temperature > 0 and self.config.temperature != 1.0:
            logits = logits / self.config.temperature
        selected = -F.cross_entropy(logits, targets, reduction="none")
        logp = torch.zeros(mask.shape, dtype=torch.float32, device=selected.device).index_put(
            (rows, cols + 1), selected
        )
        return logp, logits, out

    @torch.no_grad()
    def _ref_logprobs(self, tb: TensorBatch) -> torch.Tensor:
        if self.config.lora:
            peft_model: Any = self.model
            with peft_model.disable_adapter():
                return self._forward(self.model, tb)[0]
        assert self.ref_model is not None
        return self._forward(self.ref_model, tb)[0]

    def _slices(self, n: int) -> list[slice]:
        mb = self.config.micro_batch
        return [slice(i, min(i + mb, n)) for i in range(0, n, mb)]

    @staticmethod
    def _trim(tb: TensorBatch, rows: slice) -> TensorBatch:
        width = int(tb.attention_mask[rows].sum(dim=1).max())
        return TensorBatch(
            tb.input_ids[rows, :width],
            tb.attention_mask[rows, :width],
            tb.loss_mask[rows, :width],
            tb.old_logprobs[rows, :width],
            tb.sample[rows],
        )

    # ----- one step -----

    def train_step(self, batch: EpisodeBatch) -> dict[str, float]:
        """One optimiser step on ``batch``; returns the step's metrics.

        The step's randomness (dropout) is seeded from ``(seed, step)`` inside a forked RNG,
        so it does not depend on (nor disturb) what else the process drew since the last
        checkpoint. Raises ``UserError`` when the batch has no usable sample.
        """
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.seed * 1_000_003 + self.step)
            return self._train_step(batch)

    def _train_step(self, batch: EpisodeBatch) -> dict[str, float]:
        cfg = self.config
        if not batch.samples:
            raise UserError(
                f"No trainable episodes in the batch ({batch.stats.episodes_in} in, "
                f"{batch.stats.excluded_reward_error} with reward errors, "
                f"{batch.stats.excluded_no_tokens} without tokens)."
            )
        started = time.perf_counter()
        self.model.train()
        seqs = sorted(batch.sequences, key=lambda s: (len(s.input_ids), s.sample))
        full = collate(seqs, self.pad_id).to(self.device)
        mask = full.loss_mask
        n_tokens = float(mask.sum())
        slices = self._slices(len(seqs))
        rewards = batch.rewards().to(self.device)
        metrics: dict[str, float] = {
            "reward_mean": float(rewards.mean()),
            "reward_std": float(rewards.std(unbiased=False)),
            "samples": float(len(batch.samples)),
            "sequences": float(len(seqs)),
            "trained_tokens": n_tokens,
        }
        metrics.update(batch.stats.as_metrics())

        need_ref = cfg.beta > 0
        ref_lp = torch.zeros_like(full.old_logprobs)
        if need_ref:
            for sl in slices:
                part = self._trim(full, sl)
                ref_lp[sl, : part.input_ids.shape[1]] = self._ref_logprobs(part)

        # advantages, per token [N, L]
        old_values = returns = torch.zeros_like(mask)
        if cfg.algo == "grpo":
            ga = group_advantages(rewards, batch.group_ids().to(self.device), scale=cfg.grpo.scale)
            adv = ga.advantages[full.sample][:, None].expand_as(mask) * mask
            metrics.update(
                groups=float(ga.n_groups),
                degenerate_groups=float(ga.degenerate_groups),
                degenerate_samples=float(ga.degenerate_samples),
            )
        elif cfg.algo == "reinforce_pp":
            seq_rewards = rewards[full.sample]
            adv = reinforce_pp_advantages(
                seq_rewards, mask, full.old_logprobs, ref_lp if need_ref else None, cfg.reinforce_pp
            )
        else:
            assert self.value_head is not None
            old_values = torch.zeros_like(mask)
            with torch.no_grad():
                for sl in slices:
                    part = self._trim(full, sl)
                    out = self._forward(self.model, part, hidden=True)[2]
                    old_values[sl, : part.input_ids.shape[1]] = self.value_head(out.hidden_states[-1]).float()
            tok_r = torch.zeros_like(mask)
            if need_ref:
                tok_r = tok_r - cfg.ppo.beta * (full.old_logprobs - ref_lp) * mask
            last = last_trained_index(mask)
            rows = torch.nonzero(last >= 0).flatten()
            tok_r[rows, last[rows]] += rewards[full.sample][rows]
            raw_adv, returns = gae(tok_r, old_values * mask, mask, gamma=cfg.ppo.gamma, lam=cfg.ppo.lam)
            adv = whiten(raw_adv, mask)
        tok_adv = adv[mask > 0]
        metrics.update(
            adv_mean=float(tok_adv.mean()) if tok_adv.numel() else 0.0,
            adv_std=float(tok_adv.std(unbiased=False)) if tok_adv.numel() else 0.0,
            adv_abs_mean=float(tok_adv.abs().mean()) if tok_adv.numel() else 0.0,
        )

        sums = {"loss": 0.0, "clipped": 0.0, "kl": 0.0, "kl_rollout": 0.0, "mismatch": 0.0, "ratio": 0.0}
        ent_sum, ent_n, grad_norm, value_loss = 0.0, 0, 0.0, 0.0
        processed = 0
        for epoch in range(cfg.epochs):
            normaliser = n_tokens if (cfg.algo != "grpo" or cfg.grpo.agg == "token") else float(len(seqs))
            for sl in slices:
                part = self._trim(full, sl)
                width = part.input_ids.shape[1]
                m = part.loss_mask
                logp, logits, out = self._forward(self.model, part, hidden=cfg.algo == "ppo")
                a = adv[sl, :width]
                r_lp = ref_lp[sl, :width] if need_ref else None
                extra: dict[str, torch.Tensor]
                if cfg.algo == "grpo":
                    loss, extra = grpo_loss(logp, part.old_logprobs, a, m, cfg.grpo, normaliser, r_lp)
                elif cfg.algo == "reinforce_pp":
                    loss, extra = reinforce_pp_loss(logp, part.old_logprobs, a, m, cfg.reinforce_pp, normaliser)
                else:
                    assert self.value_head is not None
                    values = self.value_head(out.hidden_states[-1])
                    loss, extra = ppo_loss(
                        logp,
                        part.old_logprobs,
                        a,
                        values,
                        old_values[sl, :width],
                        returns[sl, :width],
                        m,
                        cfg.ppo,
                        normaliser,
                    )
                    value_loss += float(extra["value_loss"])
                if loss.requires_grad:
                    loss.backward()
                processed += int(part.attention_mask.sum())
                if epoch == 0:
                    with torch.no_grad():
                        lp = logp.detach()
                        sums["loss"] += float(loss.detach())
                        sums["clipped"] += float((extra["clipped"] * m).sum())
                        sums["ratio"] += float((extra["ratio"] * m).sum())
                        sums["mismatch"] += float(((lp - part.old_logprobs).abs() * m).sum())
                        sums["kl_rollout"] += float((kl_k3(lp, part.old_logprobs) * m).sum())
                        if r_lp is not None:
                            sums["kl"] += float((kl_k3(lp, r_lp) * m).sum())
                        sel = torch.log_softmax(logits.detach().float(), dim=-1)
                        ent_sum += float(-(sel.exp() * sel).sum())
                        ent_n += int(sel.shape[0])
                del out, logp, logits, loss
            params = self.trainable_parameters()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
            if math.isfinite(grad_norm):
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.model.eval()
        elapsed = time.perf_counter() - started
        denom = max(n_tokens, 1.0)
        metrics.update(
            loss=sums["loss"],
            clip_frac=sums["clipped"] / denom,
            ratio_mean=sums["ratio"] / denom,
            logprob_mismatch=sums["mismatch"] / denom,
            kl_rollout=sums["kl_rollout"] / denom,
            entropy=ent_sum / max(ent_n, 1),
            grad_norm=grad_norm,
            tokens_per_s=processed / elapsed if elapsed > 0 else 0.0,
            step_time_s=elapsed,
            lr=float(self.optimizer.param_groups[0]["lr"]),
        )
        if need_ref:
            metrics["kl"] = sums["kl"] / denom
        if cfg.algo == "ppo":
            metrics["value_loss"] = value_loss
        return metrics

    # ----- checkpoints -----

    def save_checkpoint(self, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the resumable state to ``folder`` (atomically: built aside, then renamed)."""
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        state = {
            "step": self.step,
            "config": self.config.to_dict(),
            "trainable": {k: v.cpu().clone() for k, v in self.trainable_state().items()},
            "value_head": self.value_head.state_dict() if self.value_head is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "rng": _rng_state(),
            "extra": extra or {},
        }
        torch.save(state, tmp / CHECKPOINT_FILE)
        if self.config.lora:
            self.model.save_pretrained(str(tmp / "adapter"))  # type: ignore[operator]
        (tmp / "meta.json").write_text(json.dumps({"step": self.step, "algo": self.config.algo}))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return folder

    def load_checkpoint(self, folder: str | Path) -> dict[str, Any]:
        """Restore weights, optimiser, RNG and step from ``folder``; returns the checkpoint's ``extra``."""
        path = Path(folder) / CHECKPOINT_FILE
        if not path.is_file():
            raise UserError(f"No trainer checkpoint at {str(folder)!r}.")
        state = torch.load(path, map_location=self.device, weights_only=False)
        own = dict(self.model.named_parameters())
        missing = [k for k in state["trainable"] if k not in own]
        if missing:
            raise UserError(f"Checkpoint {str(folder)!r} does not fit this model (e.g. {missing[0]!r}).")
        with torch.no_grad():
            for k, v in state["trainable"].items():
                own[k].copy_(v.to(own[k].dtype))
        if self.value_head is not None and state.get("value_head") is not None:
            self.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        self.step = int(state["step"])
        extra: dict[str, Any] = state.get("extra") or {}
        return extra


def read_checkpoint_config(folder: str | Path) -> TrainerConfig:
    """The ``TrainerConfig`` stored in a checkpoint folder."""
    path = Path(folder) / CHECKPOINT_FILE
    if not path.is_file():
        raise UserError(f"No trainer checkpoint at {str(folder)!r}.")
    state = torch.load(path, map_location="cpu", weights_only=False)
    return TrainerConfig.from_dict(state["config"])
