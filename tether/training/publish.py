"""Publishing new policy weights from the trainer to the model that samples rollouts.

``PolicyPublisher`` is the seam: ``await publisher.publish(trainer, version)`` makes the
trainer's current policy the one the rollout model samples from, as ``version`` (which
later ``Completion.policy_version`` and so the stored steps report).

* ``InProcessPublisher`` — for a ``LocalModel`` (or any model exposing ``hf_model`` and
  ``update_weights``). When the trainer trains the very module the model samples with
  (the default in ``tether train``), publishing only bumps the version under the model's
  lock; otherwise the merged weights are copied in with ``update_weights``.
* ``ServerPublisher`` — for a vLLM server or in-process engine, through the serving
  side's ``WeightPublisher.publish_weights(version, path_or_state)``: a LoRA run writes its
  adapter folder, a full fine-tune its state dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tether.errors import UserError
from tether.training.trainer import Trainer


@runtime_checkable
class PolicyPublisher(Protocol):
    """Makes a trainer's current weights live on the rollout model."""

    async def publish(self, trainer: Trainer, version: int) -> int:
        """Publish as ``version``; returns the version the model now serves."""
        ...


class InProcessPublisher:
    """Publishes to an in-process torch model (``LocalModel``)."""

    def __init__(self, model: Any) -> None:
        if not hasattr(model, "hf_model"):
            raise UserError(f"Model {getattr(model, 'name', model)!r} has no in-process weights to publish to.")
        self.model = model

    def shares_weights(self, trainer: Trainer) -> bool:
        """Whether the model samples with the module the trainer updates."""
        return self.model.hf_model is trainer.base_model

    async def publish(self, trainer: Trainer, version: int) -> int:
        """Bump the version (shared module) or copy the merged weights in."""
        if self.shares_weights(trainer):
            lock = getattr(self.model, "model_lock", None)
            with lock if lock is not None else contextlib.nullcontext():
                self.model.hf_model.eval()
                self.model.policy_version = int(version)
            return int(version)
        state = trainer.merged_state()
        update = getattr(self.model, "aupdate_weights", None)
        if update is not None:
            await update(state, version)
        else:
            await asyncio.to_thread(self.model.update_weights, state, version)
        return int(version)


class ServerPublisher:
    """Publishes through the serving side's ``publish_weights(version, path_or_state)``.

    Args:
        target: an object with ``async publish_weights(version, path_or_state) -> int``
            (``tether.serving.publish.WeightPublisher`` or an in-process engine model).
        folder: where LoRA adapter folders are written (one per version, the last
            ``keep`` kept).
    """

    def __init__(self, target: Any, folder: str | Path, keep: int = 2) -> None:
        if not hasattr(target, "publish_weights"):
            raise UserError("The rollout model cannot receive weights (it has no publish_weights).")
        self.target = target
        self.folder = Path(folder)
        self.keep = max(1, keep)
        self._written: list[Path] = []

    async def publish(self, trainer: Trainer, version: int) -> int:
        """Write the adapter (LoRA) or pass the state dict (full), then publish it as ``version``."""
        if trainer.config.lora:
            path = self.folder / f"policy-v{version}"
            save: Any = trainer.model.save_pretrained
            await asyncio.to_thread(save, str(path))
            self._written.append(path)
            served = int(await self.target.publish_weights(version, path))
            while len(self._written) > self.keep:
                shutil.rmtree(self._written.pop(0), ignore_errors=True)
            return served
        return int(await self.target.publish_weights(version, trainer.merged_state()))


def publisher_for(model: Any, folder: str | Path) -> PolicyPublisher:
    """The publisher that fits ``model``: in-process for local torch models, else the server side."""
    if hasattr(model, "hf_model"):
        return InProcessPublisher(model)
    if hasattr(model, "publish_weights"):
        return ServerPublisher(model, folder)
    from tether.serving.publish import WeightPublisher

    return ServerPublisher(WeightPublisher(model), folder)
