"""Exercise the in-process ``vllm:`` backend; run with the vLLM interpreter (``.venv-vllm``).

Usage: ``python tests/vllm_engine_check.py MODEL_DIR WORK_DIR`` (repo root on PYTHONPATH).
Prints one JSON object of observations; ``tests/test_vllm_engine.py`` asserts on it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tether.models.vllm_engine import VLLMEngineModel
from tether.tools.calls import parse_tool_calls
from tether.types import Completion, Message, SamplingParams

MUL = {
    "name": "mul",
    "description": "Multiply two numbers.",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
}


def make_lora(model_dir: Path, out: Path, rank: int = 8) -> Path:
    """A random rank-``rank`` LoRA adapter on every ``q_proj``, in PEFT's folder format."""
    config = json.loads((model_dir / "config.json").read_text())
    hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for i in range(layers):
        prefix = f"base_model.model.model.layers.{i}.self_attn.q_proj"
        tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, hidden, generator=gen) * 0.05
        tensors[f"{prefix}.lora_B.weight"] = torch.randn(hidden, rank, generator=gen) * 0.05
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"))
    adapter = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": 2 * rank,
        "target_modules": ["q_proj"],
        "bias": "none",
        "base_model_name_or_path": str(model_dir),
    }
    (out / "adapter_config.json").write_text(json.dumps(adapter))
    return out


async def main(model_dir: Path, work: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    model = VLLMEngineModel(model_dir, max_model_len=1024, kv_cache_gib=0.5)
    t = time.monotonic()
    await model.start()
    out["start_s"] = time.monotonic() - t
    msgs = [Message(role="user", content="What is 6*7?")]
    greedy = SamplingParams(temperature=0.0, max_tokens=12)
    c0 = await model.generate(msgs, greedy)
    out["base"] = c0.model_dump()
    items = [x async for x in model.stream(msgs, greedy)]
    final = items[-1]
    assert isinstance(final, Completion)
    out["stream_deltas"] = "".join(x for x in items[:-1] if isinstance(x, str))
    out["stream"] = final.model_dump()
    call = await model.generate(
        [Message(role="user", content="Multiply 6 by 7 with the mul tool.")],
        SamplingParams(max_tokens=80),
        tools=[MUL],
        constrained="required",
    )
    parsed = parse_tool_calls(call.text)
    out["required_call"] = {"text": call.text, "valid": [c.model_dump() for c in parsed.calls], "errors": parsed.errors}
    # full weights, in place: damp the first layer's MLP output
    state = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(str(f)))
    key = "model.layers.0.mlp.down_proj.weight"
    state[key] = state[key] * 0.5
    t = time.monotonic()
    out["published_full"] = await model.publish_weights(1, state)
    out["publish_full_s"] = time.monotonic() - t
    out["full"] = (await model.generate(msgs, greedy)).model_dump()
    out["published_lora"] = await model.publish_weights(2, make_lora(model_dir, work / "lora"))
    out["lora"] = (await model.generate(msgs, greedy)).model_dump()
    await model.aclose()
    return out


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
    print("RESULT " + json.dumps(result, default=str))
