"""The ``openai:`` backend against a tiny scripted OpenAI-compatible HTTP server on 127.0.0.1.

The fake is the seam: a real HTTP server (stdlib, in a thread) whose answers each test
scripts (JSON, SSE streams, 4xx/5xx, dropped connections, slow answers), so retries,
timeouts, streaming and the vLLM fields are exercised over real sockets.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tether.errors import ModelError, UserError
from tether.models import load_model
from tether.models.openai_compat import OpenAIModel, parse_policy_model_name, policy_model_name
from tether.models.tool_constraints import tool_call_structural_tag
from tether.tools.calls import format_tool_call, parse_tool_calls
from tether.types import Completion, Message, SamplingParams


@dataclass
class Reply:
    """One scripted answer: JSON (``body``), an SSE stream (``chunks``), or a dropped connection."""

    status: int = 200
    body: Any = None
    chunks: list[Any] | None = None
    drop_after: int | None = None  # close the socket after this many chunks (no [DONE])
    delay: float = 0.0
    close: bool = False  # close without answering


@dataclass
class FakeServer:
    url: str
    replies: list[Reply] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=lambda: [{"id": "fake-base", "parent": None}])

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    @property
    def posted(self) -> list[Any]:
        return [body for method, _, body in self.requests if method == "POST"]


def _handler(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send_json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            state.requests.append(("GET", self.path, None))
            self._send_json(200, {"object": "list", "data": state.models})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"null")
            state.requests.append(("POST", self.path, body))
            reply = state.replies.pop(0) if state.replies else Reply(500, {"error": {"message": "script ran out"}})
            if reply.delay:
                time.sleep(reply.delay)
            if reply.close:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if reply.chunks is None:
                self._send_json(reply.status, reply.body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def write(text: str) -> None:
                data = text.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            for n, chunk in enumerate(reply.chunks):
                if reply.drop_after is not None and n >= reply.drop_after:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                write(f"data: {json.dumps(chunk)}\n\n")
            write("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(FakeServer(url="")))
    state = FakeServer(url=f"http://127.0.0.1:{server.server_address[1]}/v1")
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def completion_body(text: str, ids: list[int], n: int = 1) -> dict[str, Any]:
    choice = {
        "message": {"role": "assistant", "content": text},
        "logprobs": {"content": [{"token": f"t{i}", "logprob": -0.1 * (k + 1)} for k, i in enumerate(ids)]},
        "finish_reason": "stop",
        "token_ids": ids,
    }
    return {
        "model": "fake-base",
        "choices": [{**choice, "index": k} for k in range(n)],
        "prompt_token_ids": [1, 2, 3],
    }


def model_for(fake: FakeServer, **kw: Any) -> OpenAIModel:
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("max_retries", 2)
    return OpenAIModel(fake.url, "fake-base", **kw)


MSGS = [Message(role="system", content="sys"), Message(role="user", content="What is 6*7?")]
TOOLS = [
    {
        "name": "mul",
        "description": "Multiply.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    },
    {
        "name": "finish",
        "description": "Answer.",
        "parameters": {"type": "object", "properties": {"answer": {"type": "string"}}},
    },
]


async def test_generate_reports_sampled_tokens_logprobs_and_sends_sampling_params(fake: FakeServer) -> None:
    fake.script(Reply(body=completion_body("42", [52, 50, 2])))
    model = model_for(fake, policy_version=0)
    params = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=33, seed=5, stop=["\n\n"])
    c = await model.generate(MSGS, params)
    await model.aclose()
    assert (c.text, c.token_ids, c.prompt_token_ids) == ("42", [52, 50, 2], [1, 2, 3])
    assert c.logprobs == pytest.approx([-0.1, -0.2, -0.3])
    body = fake.posted[0]
    assert body["model"] == "fake-base" and body["n"] == 1
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"], body["stop"]) == (
        0.7,
        0.9,
        33,
        5,
        ["\n\n"],
    )
    assert body["logprobs"] is True and body["return_token_ids"] is True
    assert body["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "What is 6*7?"}]
    assert "response_format" not in body


async def test_an_answer_without_token_ids_is_refused(fake: FakeServer) -> None:
    body = completion_body("42", [52, 50])
    del body["choices"][0]["token_ids"]
    fake.script(Reply(body=body), Reply(body=completion_body("42", [52, 50])))
    model = model_for(fake)
    with pytest.raises(ModelError, match="returned no token ids"):
        await model.generate(MSGS, SamplingParams())
    mismatched = completion_body("42", [52, 50])
    mismatched["choices"][0]["token_ids"] = [52, 50, 2]
    fake.replies[:] = [Reply(body=mismatched)]
    with pytest.raises(ModelError, match="returned 3 token ids but 2 logprobs"):
        await model.generate(MSGS, SamplingParams())
    await model.aclose()
    plain = model_for(fake, vllm_extensions=False)
    fake.script(Reply(body=body))
    assert (await plain.generate(MSGS, SamplingParams())).token_ids == []
    await plain.aclose()
    assert "return_token_ids" not in fake.posted[-1]


async def test_generate_n_returns_every_choice(fake: FakeServer) -> None:
    fake.script(Reply(body=completion_body("x", [7], n=3)))
    model = model_for(fake)
    out = await model.generate_n(MSGS, SamplingParams(n=3, temperature=1.0))
    await model.aclose()
    assert len(out) == 3 and fake.posted[0]["n"] == 3


async def test_constrained_tools_send_a_structural_tag_per_tool_and_the_switch_turns_it_off(fake: FakeServer) -> None:
    fake.script(*[Reply(body=completion_body("a", [1])) for _ in range(4)])
    model = model_for(fake)
    await model.generate(MSGS, SamplingParams(), tools=TOOLS)  # default: constrained, auto
    await model.generate(MSGS, SamplingParams(), tools=TOOLS, constrained=False)
    await model.generate(MSGS, SamplingParams(), tools=TOOLS, constrained="required")
    off = model_for(fake, constrained=False)
    await off.generate(MSGS, SamplingParams(), tools=TOOLS)
    await model.aclose()
    await off.aclose()
    auto = fake.posted[0]["response_format"]
    assert auto["type"] == "structural_tag" and auto["format"]["type"] == "triggered_tags"
    assert auto["format"]["triggers"] == ["<tool_call>"] and auto["format"]["at_least_one"] is False
    assert [t["content"]["json_schema"] for t in auto["format"]["tags"]] == [t["parameters"] for t in TOOLS]
    required = fake.posted[2]["response_format"]["format"]
    assert required["type"] == "tags_with_separator" and required["at_least_one"] and required["stop_after_first"]
    assert "response_format" not in fake.posted[1] and "response_format" not in fake.posted[3]


def test_structural_tag_tags_produce_tether_tool_calls() -> None:
    tag = tool_call_structural_tag(TOOLS)["format"]["tags"][0]
    text = "Let me compute. " + tag["begin"] + json.dumps({"a": 6, "b": 7}) + tag["end"]
    parsed = parse_tool_calls(text)
    assert not parsed.errors and parsed.calls[0].name == "mul" and parsed.calls[0].arguments == {"a": 6, "b": 7}
    assert text.endswith(format_tool_call("mul", {"a": 6, "b": 7}))
    with pytest.raises(ValueError):
        tool_call_structural_tag([])
    with pytest.raises(ValueError):
        tool_call_structural_tag(TOOLS, "sometimes")  # type: ignore[arg-type]


async def test_5xx_is_retried_then_succeeds(fake: FakeServer) -> None:
    fake.script(
        Reply(503, {"error": {"message": "busy"}}), Reply(502, "bad gateway"), Reply(body=completion_body("ok", [1]))
    )
    model = model_for(fake)
    c = await model.generate(MSGS, SamplingParams())
    await model.aclose()
    assert c.text == "ok" and len(fake.posted) == 3


async def test_5xx_that_persists_is_one_clear_error(fake: FakeServer) -> None:
    fake.script(*[Reply(500, {"error": {"message": "engine dead"}})] * 3)
    model = model_for(fake, max_retries=2)
    with pytest.raises(ModelError, match=r"kept failing \(HTTP 500: engine dead\) after 3 attempts"):
        await model.generate(MSGS, SamplingParams())
    await model.aclose()
    assert len(fake.posted) == 3


async def test_4xx_is_not_retried_and_quotes_the_server(fake: FakeServer) -> None:
    fake.script(Reply(400, {"error": {"message": "max_tokens is too large", "type": "BadRequestError", "code": 400}}))
    model = model_for(fake)
    with pytest.raises(ModelError, match="rejected the request with HTTP 400: max_tokens is too large"):
        await model.generate(MSGS, SamplingParams())
    await model.aclose()
    assert len(fake.posted) == 1


async def test_dropped_connection_is_retried(fake: FakeServer) -> None:
    fake.script(Reply(close=True), Reply(body=completion_body("back", [9])))
    model = model_for(fake)
    assert (await model.generate(MSGS, SamplingParams())).text == "back"
    await model.aclose()


async def test_unreachable_server_is_one_sentence() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = OpenAIModel(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff_s=0.01)
    with pytest.raises(ModelError, match=rf"^Cannot reach the model server at http://127.0.0.1:{port}/v1 "):
        await model.generate(MSGS, SamplingParams())
    await model.aclose()


async def test_request_timeout(fake: FakeServer) -> None:
    fake.script(Reply(body=completion_body("late", [1]), delay=1.0))
    model = model_for(fake, timeout=0.2)
    with pytest.raises(ModelError, match="did not answer within 0.2 s"):
        await model.generate(MSGS, SamplingParams())
    await model.aclose()


def stream_chunks() -> list[dict[str, Any]]:
    return [
        {
            "model": "fake-base",
            "prompt_token_ids": [1, 2, 3],
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        },
        {
            "model": "fake-base",
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "4"},
                    "token_ids": [52],
                    "logprobs": {"content": [{"token": "4", "logprob": -0.5}]},
                }
            ],
        },
        {
            "model": "fake-base",
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "2"},
                    "token_ids": [50],
                    "logprobs": {"content": [{"token": "2", "logprob": -0.25}]},
                }
            ],
        },
        {
            "model": "fake-base",
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": ""},
                    "token_ids": [2],
                    "finish_reason": "stop",
                    "logprobs": {"content": [{"token": "<e>", "logprob": -0.125}]},
                }
            ],
        },
        {"model": "fake-base", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}},
    ]


async def test_stream_yields_deltas_then_the_full_completion(fake: FakeServer) -> None:
    fake.script(Reply(chunks=stream_chunks()))
    model = model_for(fake)
    items = [x async for x in model.stream(MSGS, SamplingParams())]
    await model.aclose()
    assert items[:-1] == ["4", "2"]
    final = items[-1]
    assert isinstance(final, Completion)
    assert (final.text, final.token_ids, final.logprobs, final.prompt_token_ids) == (
        "42",
        [52, 50, 2],
        [-0.5, -0.25, -0.125],
        [1, 2, 3],
    )
    assert fake.posted[0]["stream"] is True


async def test_stream_retries_a_5xx_before_it_starts(fake: FakeServer) -> None:
    fake.script(Reply(503, {"error": {"message": "warming up"}}), Reply(chunks=stream_chunks()))
    model = model_for(fake)
    items = [x async for x in model.stream(MSGS, SamplingParams())]
    await model.aclose()
    assert isinstance(items[-1], Completion) and items[-1].text == "42"


async def test_stream_broken_midway_is_an_error_not_a_retry(fake: FakeServer) -> None:
    fake.script(Reply(chunks=stream_chunks(), drop_after=2), Reply(chunks=stream_chunks()))
    model = model_for(fake)
    seen: list[str | Completion] = []
    with pytest.raises(ModelError, match="closed the connection in the middle of a response"):
        async for x in model.stream(MSGS, SamplingParams()):
            seen.append(x)
    await model.aclose()
    assert seen == ["4"] and len(fake.posted) == 1


async def test_spec_without_model_uses_the_servers_base_model(fake: FakeServer) -> None:
    fake.models = [{"id": "fake-base", "parent": None}, {"id": "fake-base@policy-v2", "parent": "fake-base"}]
    fake.script(Reply(body=completion_body("x", [1])))
    model = load_model(f"openai:{fake.url}")
    c = await model.generate(MSGS, SamplingParams())
    assert fake.posted[0]["model"] == "fake-base" and c.policy_version == 0
    assert isinstance(model, OpenAIModel)
    assert await model.refresh_policy() == 2 and model.served_model == "fake-base@policy-v2"
    fake.script(Reply(body=completion_body("y", [1])))
    c = await model.generate(MSGS, SamplingParams())
    await model.aclose()
    assert fake.posted[1]["model"] == "fake-base@policy-v2" and c.policy_version == 2


def test_policy_names_round_trip() -> None:
    assert policy_model_name("m", 0) == "m"
    assert parse_policy_model_name(policy_model_name("smollm2", 12)) == ("smollm2", 12)
    assert parse_policy_model_name("smollm2") == ("smollm2", 0)


@pytest.mark.parametrize("spec", ["openai:", "openai:127.0.0.1:8000/v1", "openai:ftp://x/v1#m"])
def test_bad_spec_is_a_user_error(spec: str) -> None:
    with pytest.raises(UserError, match="needs a server URL"):
        load_model(spec)


def test_unknown_option_is_a_user_error() -> None:
    with pytest.raises(UserError, match="Unknown option"):
        load_model("openai:http://127.0.0.1:1/v1#m", temprature=1.0)
