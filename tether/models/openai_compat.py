"""The ``openai:`` backend: any OpenAI-compatible chat server, with vLLM's extensions.

Spec: ``openai:http://HOST:PORT/v1#MODEL`` (``#MODEL`` optional: the server's first base
model is used). Against vLLM every completion carries what was sampled, exactly:

* ``return_token_ids`` -> the sampled token ids and the prompt token ids;
* ``logprobs`` -> the log probability of each sampled token under the serving policy;
* ``response_format`` structural tags -> tool calls constrained to the offered schemas
  (see ``tether.models.tool_constraints``), switched per call with ``constrained=``.

Transport: one pooled ``httpx.AsyncClient`` (no proxies from the environment).
Connection errors, 429 and 5xx answers are retried with exponential backoff and
jitter; a 4xx answer is a ``ModelError`` quoting the server's message; a request that
outlives ``timeout`` seconds is a ``ModelError``. A stream that breaks after it started
is never retried (the tokens already yielded cannot be taken back).

Policy versions: weights published by ``tether.serving.publish`` are served as LoRA
adapters named ``policy_model_name(base, version)``. ``set_policy`` switches this
client to one; ``refresh_policy`` finds the newest on the server. Every ``Completion``
reports the ``policy_version`` it was sampled with.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from tether.errors import ModelError, UserError
from tether.models.tool_constraints import ToolChoice, resolve_tool_choice, tool_call_structural_tag
from tether.types import Completion, Message, SamplingParams

_RETRYABLE_EXC = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.PoolTimeout,
)
_POLICY_RE = re.compile(r"^(?P<base>.+)@policy-v(?P<version>\d+)$")


def policy_model_name(base: str, version: int) -> str:
    """The served model name of policy ``version`` of ``base`` (version 0 is ``base`` itself)."""
    return base if version == 0 else f"{base}@policy-v{version}"


def parse_policy_model_name(name: str) -> tuple[str, int]:
    """``(base, version)`` of a served model name made by ``policy_model_name``."""
    m = _POLICY_RE.match(name)
    return (m.group("base"), int(m.group("version"))) if m else (name, 0)


def _to_wire(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "tool" and message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out


def server_error_message(response: httpx.Response) -> str:
    """The server's own error text (OpenAI / vLLM / FastAPI shapes), else the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            for key in ("message", "detail"):
                if isinstance(err.get(key), str):
                    return str(err[key]).strip()
        if isinstance(err, str):
            return err.strip()
        if isinstance(data.get("detail"), str):
            return str(data["detail"]).strip()
    return json.dumps(data)[:300]


def _logprob_values(logprobs: Any) -> list[float]:
    content = (logprobs or {}).get("content") or []
    return [float(item["logprob"]) for item in content]


class _StreamState:
    """Accumulates one streamed choice."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.token_ids: list[int] = []
        self.logprobs: list[float] = []
        self.prompt_token_ids: list[int] = []
        self.finish_reason = "stop"
        self.model = ""


class OpenAIModel:
    """A ``ChatModel`` talking to an OpenAI-compatible server (vLLM first of all).

    Args:
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: the served (base) model name; None picks the server's first base model.
        api_key: sent as a bearer token (vLLM ignores it unless started with ``--api-key``).
        timeout: seconds a request may take (for streams: between two chunks).
        connect_timeout: seconds to open a connection.
        max_retries: retries after the first attempt on connection errors, 429 and 5xx.
        backoff_s: first retry delay; doubles per retry up to ``max_backoff_s`` (with jitter).
        constrained: default for the per-call ``constrained`` switch (tool-call constraints).
        tool_choice: what ``constrained=True`` means: ``auto`` (free text, or valid calls) or
            ``required`` (the turn is exactly one valid call).
        vllm_extensions: send vLLM's ``return_token_ids``; turn off for servers that reject it.
        max_connections: size of the connection pool (concurrent requests).
        transport: an ``httpx`` transport (tests).
    """

    supports_constrained_tools = True

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str = "EMPTY",
        timeout: float = 300.0,
        connect_timeout: float = 5.0,
        max_retries: int = 4,
        backoff_s: float = 0.25,
        max_backoff_s: float = 4.0,
        constrained: bool = True,
        tool_choice: ToolChoice = "auto",
        vllm_extensions: bool = True,
        policy_version: int = 0,
        max_connections: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.base_model = model
        self.served_model = policy_model_name(model, policy_version) if model else None
        self.policy_version = policy_version
        self.name = f"openai:{self.base_url}#{model}" if model else f"openai:{self.base_url}"
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.constrained = constrained
        if tool_choice not in ("auto", "required"):
            raise UserError(f"tool_choice must be 'auto' or 'required', not {tool_choice!r}.")
        self.tool_choice: ToolChoice = tool_choice
        self.vllm_extensions = vllm_extensions
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            trust_env=False,
        )
        self._model_lock = asyncio.Lock()

    # ----- policy versions -----

    def set_policy(self, version: int, served_model: str | None = None) -> None:
        """Sample from policy ``version`` from now on (served as ``served_model``)."""
        if self.base_model is None:
            raise ModelError("set_policy needs the base model name; resolve it first with a request or refresh_policy.")
        self.policy_version = version
        self.served_model = served_model or policy_model_name(self.base_model, version)

    async def list_models(self) -> list[dict[str, Any]]:
        """The server's ``/models`` entries."""
        data = await self._request("GET", "/models", None)
        return list(data.get("data", []))

    async def refresh_policy(self) -> int:
        """Switch to the newest published policy of the base model on the server; returns its version."""
        await self._ensure_model()
        assert self.base_model is not None
        best = 0
        for entry in await self.list_models():
            base, version = parse_policy_model_name(str(entry.get("id", "")))
            if base == self.base_model and version > best:
                best = version
        self.set_policy(best)
        return best

    async def _ensure_model(self) -> str:
        if self.served_model is not None:
            return self.served_model
        async with self._model_lock:
            if self.served_model is None:
                entries = await self.list_models()
                bases = [e for e in entries if not e.get("parent")] or entries
                if not bases:
                    raise ModelError(f"The model server at {self.base_url} serves no models.")
                self.base_model = str(bases[0]["id"])
                self.served_model = policy_model_name(self.base_model, self.policy_version)
                self.name = f"openai:{self.base_url}#{self.base_model}"
        return self.served_model

    # ----- requests -----

    def _body(
        self,
        messages: list[Message],
        params: SamplingParams,
        n: int,
        tools: list[dict[str, Any]] | None,
        constrained: bool | str | None,
        model: str,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [_to_wire(m) for m in messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "n": n,
            "logprobs": True,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if self.vllm_extensions:
            body["return_token_ids"] = True
        choice = self.tool_choice_for(constrained)
        if tools and choice is not None:
            body["response_format"] = tool_call_structural_tag(tools, choice)
        return body

    def tool_choice_for(self, constrained: bool | str | None) -> ToolChoice | None:
        """The constraint of one call: None (off), ``auto`` or ``required``."""
        return resolve_tool_choice(constrained, default=self.constrained, default_choice=self.tool_choice)

    def _delay(self, attempt: int) -> float:
        base = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        return base * (0.5 + random.random() / 2)

    def _timeout_error(self) -> ModelError:
        return ModelError(f"The model server at {self.base_url} did not answer within {self.timeout:g} s.")

    def _client_error(self, response: httpx.Response) -> ModelError:
        return ModelError(
            f"The model server at {self.base_url} rejected the request with HTTP {response.status_code}: "
            f"{server_error_message(response)}"
        )

    async def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """One JSON request with retries; returns the decoded answer."""
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt - 1))
            try:
                response = await self._client.request(method, path, json=body)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                    last = "connect timeout"
                    continue
                raise self._timeout_error() from None
            except _RETRYABLE_EXC as exc:
                last = type(exc).__name__
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = f"HTTP {response.status_code}: {server_error_message(response)}"
                continue
            if response.status_code >= 400:
                raise self._client_error(response)
            try:
                data: dict[str, Any] = response.json()
            except ValueError:
                raise ModelError(f"The model server at {self.base_url} sent an answer that is not JSON.") from None
            return data
        raise self._unreachable(last)

    def _unreachable(self, last: str) -> ModelError:
        attempts = self.max_retries + 1
        if last.startswith("HTTP"):
            return ModelError(f"The model server at {self.base_url} kept failing ({last}) after {attempts} attempts.")
        return ModelError(f"Cannot reach the model server at {self.base_url} ({last}, {attempts} attempts).")

    def _checked(self, completion: Completion) -> Completion:
        """RL trains on exactly what was sampled: refuse answers that lack it."""
        if not self.vllm_extensions:
            return completion
        if completion.text and not completion.token_ids:
            raise ModelError(
                f"The model server at {self.base_url} returned no token ids: it needs vLLM's return_token_ids "
                "(vLLM >= 0.10.2), or build the model with vllm_extensions=False."
            )
        if len(completion.logprobs) != len(completion.token_ids):
            raise ModelError(
                f"The model server at {self.base_url} returned {len(completion.token_ids)} token ids "
                f"but {len(completion.logprobs)} logprobs."
            )
        return completion

    def _completion(self, choice: dict[str, Any], data: dict[str, Any]) -> Completion:
        message = choice.get("message") or {}
        return Completion(
            text=message.get("content") or "",
            token_ids=list(choice.get("token_ids") or []),
            logprobs=_logprob_values(choice.get("logprobs")),
            prompt_token_ids=list(data.get("prompt_token_ids") or []),
            finish_reason=choice.get("finish_reason") or "stop",
            model=str(data.get("model", self.served_model or "")),
            policy_version=self.policy_version,
        )

    async def generate(
        self,
        messages: list[Message],
        params: SamplingParams,
        *,
        tools: list[dict[str, Any]] | None = None,
        constrained: bool | str | None = None,
    ) -> Completion:
        """Sample one assistant turn (``params.n`` is honoured by ``generate_n``)."""
        return (
            await self.generate_n(messages, params.model_copy(update={"n": 1}), tools=tools, constrained=constrained)
        )[0]

    async def generate_n(
        self,
        messages: list[Message],
        params: SamplingParams,
        *,
        tools: list[dict[str, Any]] | None = None,
        constrained: bool | str | None = None,
    ) -> list[Completion]:
        """Sample ``params.n`` assistant turns for the same messages in one request."""
        model = await self._ensure_model()
        version = self.policy_version
        data = await self._request(
            "POST", "/chat/completions", self._body(messages, params, params.n, tools, constrained, model)
        )
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        if not choices:
            raise ModelError(f"The model server at {self.base_url} returned no choices.")
        out = [self._checked(self._completion(c, data)) for c in choices]
        for c in out:
            c.policy_version = version
        return out

    async def stream(
        self,
        messages: list[Message],
        params: SamplingParams,
        *,
        tools: list[dict[str, Any]] | None = None,
        constrained: bool | str | None = None,
    ) -> AsyncIterator[str | Completion]:
        """Yield text deltas as the server streams them; the last item is the full ``Completion``."""
        model = await self._ensure_model()
        version = self.policy_version
        body = self._body(messages, params.model_copy(update={"n": 1}), 1, tools, constrained, model)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        state = _StreamState()
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt - 1))
            started = False
            try:
                async with self._client.stream("POST", "/chat/completions", json=body) as response:
                    if response.status_code == 429 or response.status_code >= 500:
                        await response.aread()
                        last = f"HTTP {response.status_code}: {server_error_message(response)}"
                        continue
                    if response.status_code >= 400:
                        await response.aread()
                        raise self._client_error(response)
                    async for line in response.aiter_lines():
                        delta = self._consume_sse(line, state)
                        if delta is None:
                            continue
                        started = True
                        if delta:
                            yield delta
                    yield self._checked(
                        Completion(
                            text="".join(state.text),
                            token_ids=state.token_ids,
                            logprobs=state.logprobs,
                            prompt_token_ids=state.prompt_token_ids,
                            finish_reason=state.finish_reason,
                            model=state.model or model,
                            policy_version=version,
                        )
                    )
                    return
            except httpx.TimeoutException as exc:
                if not started and isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                    last = "connect timeout"
                    continue
                raise self._timeout_error() from None
            except _RETRYABLE_EXC as exc:
                if started:
                    raise ModelError(
                        f"The model server at {self.base_url} closed the connection in the middle of a response."
                    ) from None
                last = type(exc).__name__
                continue
        raise self._unreachable(last)

    def _consume_sse(self, line: str, state: _StreamState) -> str | None:
        """Fold one SSE line into ``state``; returns the text delta, or None for a non-data line."""
        if not line.startswith("data:"):
            return None
        payload = line[5:].strip()
        if payload == "[DONE]":
            return None
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError:
            raise ModelError(f"The model server at {self.base_url} streamed a chunk that is not JSON.") from None
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"]
            message = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            raise ModelError(f"The model server at {self.base_url} failed mid-stream: {message}")
        if chunk.get("prompt_token_ids"):
            state.prompt_token_ids = list(chunk["prompt_token_ids"])
        state.model = chunk.get("model", state.model)
        text = ""
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            state.token_ids.extend(choice.get("token_ids") or [])
            state.logprobs.extend(_logprob_values(choice.get("logprobs")))
            if choice.get("finish_reason"):
                state.finish_reason = choice["finish_reason"]
        state.text.append(text)
        return text

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> OpenAIModel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def parse_spec(rest: str) -> tuple[str, str | None]:
    """Split ``http://HOST:PORT/v1#MODEL`` into (base_url, model); ``UserError`` when malformed."""
    url, _, model = rest.partition("#")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(
            f"The openai model spec needs a server URL like openai:http://127.0.0.1:8000/v1#MODEL, not {rest!r}."
        )
    return url.rstrip("/"), (model or None)


def from_spec(rest: str, **options: Any) -> OpenAIModel:
    """Build an ``OpenAIModel`` from ``openai:URL#MODEL``; options go to the constructor."""
    base_url, model = parse_spec(rest)
    allowed = {
        "api_key", "timeout", "connect_timeout", "max_retries", "backoff_s", "max_backoff_s",
        "constrained", "tool_choice", "vllm_extensions", "policy_version", "max_connections",
    }  # fmt: skip
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise UserError(f"Unknown option(s) for the openai model: {', '.join(unknown)}.")
    return OpenAIModel(base_url, model, **options)
