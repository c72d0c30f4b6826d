"""Make new policy weights live without a restart, and tell clients the new policy version.

Two serving sides, one call::

    publisher = WeightPublisher(model)             # an OpenAIModel (vLLM server) or VLLMEngineModel
    version = await publisher.publish_weights(3, "/ckpt/step-300-lora")   # -> 3

* **vLLM server** (``OpenAIModel``): a LoRA adapter folder (``adapter_config.json``) is
  loaded at run time with ``POST /v1/load_lora_adapter`` under the name
  ``policy_model_name(base, version)`` (``smollm2@policy-v3``); the publisher switches
  its attached clients to it, other processes call ``OpenAIModel.refresh_policy()``.
  Older adapters beyond ``keep`` are unloaded. A full checkpoint (folder or state dict)
  is reloaded in place through ``POST /collective_rpc`` (``reload_weights``), which
  needs a server started with ``dev_mode=True`` (``VLLM_SERVER_DEV_MODE=1``).
* **in-process engine** (``VLLMEngineModel``): full weights (folder or state dict) are
  reloaded in place; a LoRA folder becomes the adapter of every later request.

The returned version is what later ``Completion.policy_version`` (and so the stored
steps and episodes) report.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx

from tether.errors import ModelError, UserError
from tether.models.openai_compat import OpenAIModel, policy_model_name, server_error_message

WeightsArg = str | Path | Mapping[str, Any]


class InProcessPublisher(Protocol):
    """What an in-process engine offers (``VLLMEngineModel``)."""

    policy_version: int

    async def publish_weights(self, version: int, path_or_state: WeightsArg) -> int:
        """Make ``path_or_state`` live as ``version``."""
        ...


def is_lora_dir(path: Path) -> bool:
    """Whether ``path`` is a PEFT LoRA adapter folder."""
    return (path / "adapter_config.json").is_file()


def save_state_dict(state: Mapping[str, Any], folder: Path) -> Path:
    """Write a ``{name: tensor}`` state dict as ``model.safetensors`` in ``folder``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


class WeightPublisher:
    """Publishes policy versions to one serving side and updates the clients attached to it.

    Args:
        target: an ``OpenAIModel`` pointing at a vLLM server, or an in-process engine model.
        keep: how many LoRA policy versions stay loaded on a server (older ones are unloaded).
        clients: more ``OpenAIModel`` instances (same server) to switch to each new version.
        timeout: seconds one publishing request may take.
    """

    def __init__(
        self,
        target: OpenAIModel | InProcessPublisher,
        *,
        keep: int = 2,
        clients: list[OpenAIModel] | None = None,
        timeout: float = 300.0,
    ) -> None:
        self.target = target
        self.keep = max(1, keep)
        self.clients: list[OpenAIModel] = list(clients or [])
        if isinstance(target, OpenAIModel) and target not in self.clients:
            self.clients.insert(0, target)
        self.timeout = timeout
        self.loaded: list[int] = []
        self._lock = asyncio.Lock()

    def attach(self, client: OpenAIModel) -> None:
        """Switch ``client`` to every version published from now on."""
        self.clients.append(client)

    async def publish_weights(self, version: int, path_or_state: WeightsArg) -> int:
        """Make ``path_or_state`` (LoRA folder, checkpoint folder or state dict) live as ``version``."""
        if version < 1:
            raise UserError(f"A published policy version must be 1 or more, not {version}.")
        async with self._lock:
            if not isinstance(self.target, OpenAIModel):
                return await self.target.publish_weights(version, path_or_state)
            return await self._publish_to_server(self.target, version, path_or_state)

    async def _publish_to_server(self, model: OpenAIModel, version: int, weights: WeightsArg) -> int:
        base = model.base_model or await _resolve_base(model)
        root = model.base_url.removesuffix("/v1")
        async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as http:
            if isinstance(weights, Mapping):
                with tempfile.TemporaryDirectory(prefix="tether-weights-") as tmp:
                    await self._reload_full(http, root, save_state_dict(weights, Path(tmp)))
                served = base
            else:
                path = Path(weights).expanduser().resolve()
                if not path.is_dir():
                    raise UserError(f"Weights folder {str(path)!r} does not exist.")
                if is_lora_dir(path):
                    served = policy_model_name(base, version)
                    await _post(
                        http, f"{model.base_url}/load_lora_adapter", {"lora_name": served, "lora_path": str(path)}
                    )
                    self.loaded.append(version)
                    await self._unload_old(http, model.base_url, base)
                else:
                    await self._reload_full(http, root, path)
                    served = base
        for client in self.clients:
            if client.base_model is None:
                client.base_model = base
            client.set_policy(version, served)
        return version

    async def _reload_full(self, http: httpx.AsyncClient, root: str, path: Path) -> None:
        body = {"method": "reload_weights", "kwargs": {"weights_path": str(path)}}
        try:
            await _post(http, f"{root}/collective_rpc", body)
            await _post(http, f"{root}/reset_prefix_cache", {})  # cached KV of the old weights
        except ModelError as exc:
            if "HTTP 404" in str(exc):
                raise UserError(
                    "This vLLM server cannot reload full weights: start it with dev_mode=True "
                    "(VLLM_SERVER_DEV_MODE=1), or publish a LoRA adapter folder."
                ) from None
            raise

    async def _unload_old(self, http: httpx.AsyncClient, base_url: str, base: str) -> None:
        while len(self.loaded) > self.keep:
            old = self.loaded.pop(0)
            await _post(http, f"{base_url}/unload_lora_adapter", {"lora_name": policy_model_name(base, old)})


async def _resolve_base(model: OpenAIModel) -> str:
    entries = await model.list_models()
    bases = [e for e in entries if not e.get("parent")]
    if not bases:
        raise ModelError(f"The model server at {model.base_url} serves no base model.")
    model.base_model = str(bases[0]["id"])
    return model.base_model


async def _post(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> None:
    try:
        response = await http.post(url, json=body)
    except httpx.TransportError as exc:
        raise ModelError(f"Cannot reach the model server at {url} ({type(exc).__name__}).") from None
    if response.status_code >= 400:
        raise ModelError(
            f"Publishing weights failed at {url} with HTTP {response.status_code}: {server_error_message(response)}"
        )


async def publish_weights(target: OpenAIModel | InProcessPublisher, version: int, path_or_state: WeightsArg) -> int:
    """One-shot ``WeightPublisher(target).publish_weights(version, path_or_state)``; returns the live version."""
    return await WeightPublisher(target).publish_weights(version, path_or_state)
