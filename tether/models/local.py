"""``LocalModel``: a ``ChatModel`` running a ChatML HF model with torch on the CPU.

Specs: ``local`` (the embedded SmolLM2-135M-Instruct, converted on first use) or
``local:/path/to/hf_folder``. Options (``load_model("local", **options)``): ``dtype``
(``"float32"`` default, or ``"bfloat16"``), ``threads`` (torch intra-op threads, default
``default_threads()``: the usable CPUs less one, at least 1, at most 8), ``max_batch`` (16), ``batch_wait_s`` (0.005).

Semantics (see ``docs/models.md``):

* ``token_ids`` are every token sampled, the final ``<|im_end|>`` included when it was
  sampled; ``text`` is ``decode(token_ids)`` with special tokens skipped, so a stop
  string that ended the turn is part of the text.
* ``logprobs[i]`` is the log-probability of ``token_ids[i]`` under the distribution it
  was drawn from: ``log_softmax(logits / T)`` (renormalised over the nucleus when
  ``top_p < 1``) for ``T > 0``; for greedy decoding (``T == 0``) it is
  ``log_softmax(logits)`` of the raw logits at the chosen token.
* Prompts are rendered per message (ChatML), each segment tokenized on its own; an
  assistant message carrying ``token_ids`` is rendered from those ids verbatim, so
  turn k's ``prompt_token_ids`` start with turn k-1's ``prompt_token_ids + token_ids``.
* Requests are queued to one worker thread that runs up to ``max_batch`` of them as one
  left-padded batch with a KV cache; each row keeps its own sampling parameters,
  random generator and stop conditions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tether.errors import ModelError, UserError
from tether.models.embedded import ensure_embedded_model, is_model_dir
from tether.types import Completion, Message, SamplingParams

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
TOOL_PREFIX = "Tool result:\n"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

Emit = Callable[[Any], None]


@dataclass
class _Request:
    prompt_ids: list[int]
    params: SamplingParams
    emit: Emit  # called (from the worker thread) with str deltas, then a Completion or an exception
    stream: bool = False
    cancelled: bool = False


@dataclass
class _Row:
    """Generation state of one request inside a batch."""

    req: _Request
    max_new: int
    generator: torch.Generator | None
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str = ""  # text decoded and released so far (held back while a UTF-8 sequence is incomplete)
    prefix_offset: int = 0
    read_offset: int = 0
    finish_reason: str | None = None


class LocalModel:
    """A ChatML causal LM run in-process with torch; batches concurrent requests.

    ``hf_model`` and ``tokenizer`` are exposed for the trainer; hold ``model_lock`` while
    changing weights in place, or call ``update_weights``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        dtype: str = "float32",
        threads: int | None = None,
        max_batch: int = 16,
        batch_wait_s: float = 0.005,
    ) -> None:
        path = Path(path).expanduser()
        if not path.is_dir():
            raise UserError(f"Model folder {str(path)!r} does not exist.")
        if not is_model_dir(path):
            raise UserError(f"{str(path)!r} is not a model folder (it needs config.json, a tokenizer and weights).")
        if dtype not in _DTYPES:
            raise UserError(f"Unknown dtype {dtype!r} for the local model; use one of {', '.join(_DTYPES)}.")
        if max_batch < 1:
            raise UserError("max_batch must be at least 1.")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads or default_threads())
        self.path = path
        self.name = name or f"local:{path.name}"
        self.policy_version = 0
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        #: the HF tokenizer and model (typed loosely: transformers' own stubs are partial)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.hf_model: Any = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, dtype=_DTYPES[dtype]
        )
        self.hf_model.eval()
        # HF fast tokenizers reset their padding/truncation state on every encode, which
        # fails ("Already borrowed") when another thread decodes at the same moment.
        self._tok_lock = threading.Lock()
        self._setup_chat_format()
        #: held while a batch generates and while weights change
        self.model_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._worker: threading.Thread | None = None
        self._closed = False
        #: how many batches of each size were run (for tests and benchmarks)
        self.batch_sizes: Counter[int] = Counter()

    # ----- prompt rendering -----

    def _setup_chat_format(self) -> None:
        tok = self.tokenizer
        ids = tok.convert_tokens_to_ids([IM_START, IM_END])
        if any(i is None or i == tok.unk_token_id for i in ids):
            raise UserError(f"{str(self.path)!r} has no ChatML tokenizer ({IM_START}/{IM_END}); LocalModel needs one.")
        self.im_start_id, self.im_end_id = int(ids[0]), int(ids[1])
        eos: set[int] = {self.im_end_id}
        gen_eos = getattr(self.hf_model.generation_config, "eos_token_id", None)
        if isinstance(gen_eos, int):
            eos.add(gen_eos)
        elif isinstance(gen_eos, list):
            eos.update(int(i) for i in gen_eos)
        self.stop_token_ids = frozenset(eos)
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else self.im_end_id)
        self._newline = self._encode("\n")
        template = tok.chat_template or ""
        self.tool_role = "tool" if ("'tool'" in template or '"tool"' in template) else "user"
        self.context_length = int(getattr(self.hf_model.config, "max_position_embeddings", 0) or 1 << 30)

    def _encode(self, text: str) -> list[int]:
        with self._tok_lock:
            return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _decode(self, ids: list[int]) -> str:
        with self._tok_lock:
            return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def _segment(self, role: str, content: str) -> list[int]:
        return [self.im_start_id, *self._encode(f"{role}\n{content}"), self.im_end_id, *self._newline]

    def render_message(self, message: Message) -> list[int]:
        """The ChatML token ids of one message (with its trailing newline)."""
        if message.role == "assistant" and message.token_ids is not None:
            ids = [self.im_start_id, *self._encode("assistant\n"), *message.token_ids]
            if not message.token_ids or message.token_ids[-1] != self.im_end_id:
                ids.append(self.im_end_id)  # forced: the turn ended on a stop string or max_tokens
            return ids + self._newline
        if message.role == "tool":
            if self.tool_role == "tool":
                return self._segment("tool", message.content)
            return self._segment("user", TOOL_PREFIX + message.content)
        return self._segment(message.role, message.content)

    def render(self, messages: list[Message]) -> list[int]:
        """The prompt token ids for ``messages``, ending with the ``<|im_start|>assistant\\n`` header."""
        ids: list[int] = []
        for message in messages:
            ids.extend(self.render_message(message))
        ids.append(self.im_start_id)
        ids.extend(self._encode("assistant\n"))
        return ids

    # ----- ChatModel API -----

    async def generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        """Sample one assistant turn (batched with concurrent requests)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Completion] = loop.create_future()

        def emit(item: Any) -> None:
            if isinstance(item, str):
                return
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, future, item)

        request = self._submit(messages, params, emit, stream=False)
        try:
            return await future
        except asyncio.CancelledError:
            request.cancelled = True
            raise

    async def stream(self, messages: list[Message], params: SamplingParams) -> AsyncIterator[str | Completion]:
        """Yield text deltas as tokens are sampled, then the ``Completion``."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def emit(item: Any) -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, item)

        request = self._submit(messages, params, emit, stream=True)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Completion):
                    return
        finally:
            request.cancelled = True  # no-op when finished; drops the row when the consumer left early

    async def aclose(self) -> None:
        """Stop the worker thread (pending requests fail with ``ModelError``)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None:
            await asyncio.to_thread(worker.join)

    # ----- weights -----

    def update_weights(self, state: dict[str, torch.Tensor] | str | Path, version: int) -> None:
        """Load new weights in place and set ``policy_version``; waits for the running batch.

        ``state`` is a state dict (a subset of the parameters is fine), a folder saved with
        ``save_pretrained`` (``*.safetensors`` or ``pytorch_model*.bin``), or a peft LoRA
        adapter folder (``adapter_config.json``), which is merged into the weights.
        """
        with self.model_lock:
            if isinstance(state, dict):
                self._load_state(state)
            else:
                folder = Path(state).expanduser()
                if not folder.is_dir():
                    raise UserError(f"Weights folder {str(folder)!r} does not exist.")
                if (folder / "adapter_config.json").is_file():
                    self._merge_adapter(folder)
                else:
                    self._load_state(_read_folder_state(folder))
            self.hf_model.eval()
            self.policy_version = int(version)

    async def aupdate_weights(self, state: dict[str, torch.Tensor] | str | Path, version: int) -> None:
        """``update_weights`` in a thread, so the event loop keeps running."""
        await asyncio.to_thread(self.update_weights, state, version)

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        own = self.hf_model.state_dict()
        unknown = [k for k in state if k not in own]
        if unknown:
            raise ModelError(f"weights do not fit {self.name}: unknown tensors {unknown[:5]}")
        bad = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
        if bad:
            raise ModelError(f"weights do not fit {self.name}: shape mismatch for {bad[:5]}")
        with torch.no_grad():
            for key, value in state.items():
                own[key].copy_(value.to(own[key].dtype))

    def _merge_adapter(self, folder: Path) -> None:
        from peft import PeftModel

        wrapped = PeftModel.from_pretrained(self.hf_model, str(folder), is_trainable=False)
        self.hf_model = wrapped.merge_and_unload()

    # ----- the batching worker -----

    def _submit(self, messages: list[Message], params: SamplingParams, emit: Emit, stream: bool) -> _Request:
        prompt = self.render(messages)
        if len(prompt) >= self.context_length:
            raise ModelError(
                f"prompt of {len(prompt)} tokens fills the context of {self.name} ({self.context_length})."
            )
        request = _Request(prompt, params, emit, stream=stream)
        with self._cond:
            if self._closed:
                raise ModelError(f"{self.name} is closed.")
            self._pending.append(request)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name=f"tether-{self.name}", daemon=True)
                self._worker.start()
            self._cond.notify()
        return request

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    for request in self._pending:
                        request.emit(ModelError(f"{self.name} was closed before generating."))
                    self._pending.clear()
                    return
                short = len(self._pending) < self.max_batch
            if short and self.batch_wait_s > 0:
                time.sleep(self.batch_wait_s)  # let requests that arrive together share the batch
            with self._cond:
                batch = [r for r in self._pending[: self.max_batch] if not r.cancelled]
                del self._pending[: self.max_batch]
            if not batch:
                continue
            try:
                with self.model_lock, torch.inference_mode():
                    self._run_batch(batch)
            except Exception as exc:  # a bug or an out-of-memory: fail these requests, keep serving
                for request in batch:
                    request.emit(ModelError(f"{self.name} failed to generate: {exc!r}"))

    def _run_batch(self, requests: list[_Request]) -> None:
        version = self.policy_version
        self.batch_sizes[len(requests)] += 1
        rows = [self._new_row(r) for r in requests]
        width = max(len(r.prompt_ids) for r in requests)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, request in enumerate(requests):
            n = len(request.prompt_ids)
            input_ids[i, width - n :] = torch.tensor(request.prompt_ids, dtype=torch.long)
            mask[i, width - n :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        from transformers import DynamicCache

        cache = DynamicCache()
        logits = self._forward(input_ids, mask, positions, cache)
        next_pos = positions[:, -1] + 1
        while True:
            tokens = self._sample(logits, rows)
            keep: list[int] = []
            for i, (row, token) in enumerate(zip(rows, tokens, strict=True)):
                self._advance(row, token)
                if row.finish_reason is None and not row.req.cancelled:
                    keep.append(i)
                elif not row.req.cancelled:
                    self._finish(row, version)
            if not keep:
                return
            step = torch.tensor([[tokens[i][0]] for i in keep], dtype=torch.long)
            if len(keep) < len(rows):
                index = torch.tensor(keep, dtype=torch.long)
                cache.batch_select_indices(index)
                mask, next_pos = mask[index], next_pos[index]
                rows = [rows[i] for i in keep]
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
            logits = self._forward(step, mask, next_pos[:, None], cache)
            next_pos = next_pos + 1

    def _forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any
    ) -> torch.Tensor:
        out = self.hf_model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :].float()

    def _new_row(self, request: _Request) -> _Row:
        params = request.params
        generator = None
        if params.temperature > 0:
            generator = torch.Generator()
            generator.manual_seed(params.seed if params.seed is not None else random.getrandbits(63))
        room = self.context_length - len(request.prompt_ids)
        return _Row(req=request, max_new=max(1, min(params.max_tokens, room)), generator=generator)

    @staticmethod
    def _sample(logits: torch.Tensor, rows: list[_Row]) -> list[tuple[int, float]]:
        """One (token, logprob) per row, each under that row's own sampling distribution."""
        temps = torch.tensor([r.req.params.temperature if r.req.params.temperature > 0 else 1.0 for r in rows])
        logp = torch.log_softmax(logits / temps[:, None], dim=-1)
        greedy = logits.argmax(dim=-1)
        picked: list[tuple[int, float]] = []
        for i, row in enumerate(rows):
            params = row.req.params
            if params.temperature <= 0:
                token = int(greedy[i])
                picked.append((token, float(logp[i, token])))
                continue
            dist = logp[i] if params.top_p >= 1.0 else _nucleus(logp[i], params.top_p)
            token = int(torch.multinomial(dist.exp(), 1, generator=row.generator))
            picked.append((token, float(dist[token])))
        return picked

    def _advance(self, row: _Row, picked: tuple[int, float]) -> None:
        token, logprob = picked
        row.token_ids.append(token)
        row.logprobs.append(logprob)
        if token in self.stop_token_ids:
            row.finish_reason = "stop"
            return
        delta = self._detok(row)
        if delta:
            start = len(row.text)
            row.text += delta
            if row.req.stream:
                row.req.emit(delta)
            stops = row.req.params.stop
            if stops:
                longest = max(len(s) for s in stops)
                window = row.text[max(0, start - longest + 1) :]
                if any(s and s in window for s in stops):
                    row.finish_reason = "stop"
                    return
        if len(row.token_ids) >= row.max_new:
            row.finish_reason = "length"

    def _detok(self, row: _Row) -> str:
        """Incremental detokenization: new complete text since the last call ('' while a character is split)."""
        ids = row.token_ids
        before = self._decode(ids[row.prefix_offset : row.read_offset])
        after = self._decode(ids[row.prefix_offset :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            row.prefix_offset, row.read_offset = row.read_offset, len(ids)
            return after[len(before) :]
        return ""

    def _finish(self, row: _Row, version: int) -> None:
        text = self._decode(row.token_ids)
        if row.req.stream and text.startswith(row.text) and len(text) > len(row.text):
            row.req.emit(text[len(row.text) :])  # flush a held-back partial character
        row.req.emit(
            Completion(
                text=text,
                token_ids=list(row.token_ids),
                logprobs=list(row.logprobs),
                prompt_token_ids=list(row.req.prompt_ids),
                finish_reason=row.finish_reason or "length",
                model=self.name,
                policy_version=version,
            )
        )


def default_threads() -> int:
    """Torch threads for generation: one core left for the event loop and tools (1 on 2 cores), at most 8.

    On a busy 2-core machine two spinning OpenMP threads were 2-4x slower per decode
    step than one (measured with ``bench/models_local.py``).
    """
    cpus = len(os.sched_getaffinity(0)) or 1
    return max(1, min(cpus - 1, 8))


def _nucleus(logp: torch.Tensor, top_p: float) -> torch.Tensor:
    """Log-probs renormalised over the smallest set of tokens whose mass reaches ``top_p`` (-inf elsewhere)."""
    sorted_lp, order = logp.sort(descending=True)
    probs = sorted_lp.exp()
    keep = order[(probs.cumsum(0) - probs) < top_p]
    out = torch.full_like(logp, float("-inf"))
    out[keep] = logp[keep] - torch.logsumexp(logp[keep], dim=0)
    return out


def _settle(future: asyncio.Future[Completion], item: Any) -> None:
    if future.done():
        return
    if isinstance(item, BaseException):
        future.set_exception(item)
    else:
        future.set_result(item)


def _read_folder_state(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    state: dict[str, torch.Tensor] = {}
    if files:
        from safetensors.torch import load_file

        for f in files:
            state.update(load_file(str(f)))
        return state
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if not bins:
        raise UserError(f"{str(folder)!r} holds no weights (*.safetensors, pytorch_model*.bin or a LoRA adapter).")
    for f in bins:
        state.update(torch.load(f, map_location="cpu", weights_only=True))
    return state


def from_spec(rest: str, **options: Any) -> LocalModel:
    """``local`` -> the embedded model; ``local:/path`` -> that HF folder."""
    if not rest:
        path = ensure_embedded_model(progress=True)
        options.setdefault("name", "local:smollm2-135m-instruct")
        return LocalModel(path, **options)
    return LocalModel(rest, **options)
