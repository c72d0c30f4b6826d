"""LocalModel on a tiny random Llama (fast) and, once, on the real embedded SmolLM2 (slow)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from tether.errors import ModelError, UserError
from tether.models import load_model
from tether.models.base import ChatModel
from tether.models.local import TOOL_PREFIX, LocalModel
from tether.models.testing import tiny_model_dir
from tether.types import Completion, Message, SamplingParams

GREEDY = SamplingParams(temperature=0.0, max_tokens=12)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def model(tiny_dir: Path) -> LocalModel:
    return LocalModel(tiny_dir)


def chat(question: str = "What is 2 + 2?") -> list[Message]:
    return [Message(role="system", content="You are helpful."), Message(role="user", content=question)]


def recomputed_logprobs(m: LocalModel, c: Completion, temperature: float = 1.0) -> torch.Tensor:
    """Log-probs of the sampled tokens from one plain forward pass over prompt + completion."""
    ids = torch.tensor([c.prompt_token_ids + c.token_ids])
    with torch.no_grad():
        logits = m.hf_model(ids).logits[0].float()
    n = len(c.prompt_token_ids)
    logp = torch.log_softmax(logits[n - 1 : -1] / temperature, dim=-1)
    return logp.gather(1, torch.tensor(c.token_ids)[:, None])[:, 0]


def test_is_a_chat_model(model: LocalModel) -> None:
    assert isinstance(model, ChatModel)
    assert model.name == "local:tiny-llama"


async def test_greedy_logprobs_are_raw_log_softmax(model: LocalModel) -> None:
    c = await model.generate(chat(), GREEDY)
    assert len(c.token_ids) == len(c.logprobs) == 12
    assert c.finish_reason == "length"
    assert c.prompt_token_ids == model.render(chat())
    torch.testing.assert_close(torch.tensor(c.logprobs), recomputed_logprobs(model, c), atol=1e-4, rtol=0)
    # greedy: each token is the argmax of the recomputed logits
    ids = torch.tensor([c.prompt_token_ids + c.token_ids])
    with torch.no_grad():
        logits = model.hf_model(ids).logits[0]
    n = len(c.prompt_token_ids)
    assert logits[n - 1 : -1].argmax(-1).tolist() == c.token_ids


async def test_sampled_logprobs_use_the_temperature(model: LocalModel) -> None:
    params = SamplingParams(temperature=0.7, max_tokens=16, seed=11)
    c = await model.generate(chat(), params)
    torch.testing.assert_close(torch.tensor(c.logprobs), recomputed_logprobs(model, c, 0.7), atol=1e-4, rtol=0)
    again = await model.generate(chat(), params)
    assert again.token_ids == c.token_ids  # the seed fixes the draw
    greedy = await model.generate(chat(), SamplingParams(max_tokens=16))
    assert c.token_ids != greedy.token_ids


async def test_top_p_logprobs_are_renormalised_over_the_nucleus(model: LocalModel) -> None:
    c = await model.generate(chat(), SamplingParams(temperature=1.0, top_p=0.5, max_tokens=10, seed=5))
    full = recomputed_logprobs(model, c)
    got = torch.tensor(c.logprobs)
    assert bool((got >= full - 1e-5).all())  # renormalising over a subset can only raise a probability
    assert bool((got > full + 1e-3).any())
    assert all(lp > float("-inf") for lp in c.logprobs)


async def test_token_ids_decode_to_the_text(model: LocalModel) -> None:
    c = await model.generate(chat("Say hello"), SamplingParams(temperature=1.0, max_tokens=20, seed=2))
    assert model.tokenizer.decode(c.token_ids, skip_special_tokens=True) == c.text
    assert c.policy_version == model.policy_version
    assert c.model == model.name


async def test_stop_string_ends_the_turn_and_stays_in_the_text(model: LocalModel) -> None:
    base = await model.generate(chat(), SamplingParams(max_tokens=24))
    decode = model.tokenizer.decode
    # a stop string taken from the middle of the unstopped text
    k = len(base.token_ids) // 2
    piece = decode(base.token_ids[k : k + 1], skip_special_tokens=True)
    assert piece.strip("\ufffd"), "pick a token with printable text"
    c = await model.generate(chat(), SamplingParams(max_tokens=24, stop=[piece]))
    assert c.finish_reason == "stop"
    assert piece in c.text
    assert c.token_ids == base.token_ids[: len(c.token_ids)]
    first = next(i for i in range(1, 25) if piece in decode(base.token_ids[:i], skip_special_tokens=True))
    assert len(c.token_ids) == first  # stopped at the first token that completed the stop string


async def test_sampled_eos_is_kept_and_rendered_without_a_second_im_end(tmp_path: Path) -> None:
    m = LocalModel(tiny_model_dir(tmp_path, tie_word_embeddings=False))
    first = await m.generate(chat(), SamplingParams(max_tokens=4))
    winner = first.token_ids[0]
    with torch.no_grad():
        head = m.hf_model.lm_head.weight
        head[m.im_end_id] = head[winner] * 10.0  # <|im_end|> now beats the old greedy winner (positive logit)
    ids = torch.tensor([first.prompt_token_ids])
    with torch.no_grad():
        top = int(m.hf_model(ids).logits[0, -1].argmax())
    assert top == m.im_end_id, "the seed-0 tiny model has a positive top logit, so <|im_end|> must win now"
    c = await m.generate(chat(), SamplingParams(max_tokens=4))
    assert c.token_ids == [m.im_end_id]
    assert c.finish_reason == "stop"
    assert c.text == ""
    history = [*chat(), Message(role="assistant", content=c.text, token_ids=c.token_ids)]
    nxt = m.render([*history, Message(role="user", content="again")])
    newline = m.tokenizer.encode("\n", add_special_tokens=False)
    assert nxt[: len(c.prompt_token_ids) + 1 + len(newline)] == c.prompt_token_ids + [m.im_end_id] + newline
    await m.aclose()


async def test_prefix_property_over_three_turns_with_tool_messages(model: LocalModel) -> None:
    messages = chat("Add 1 and 2 with the tool.")
    previous: Completion | None = None
    newline = model.tokenizer.encode("\n", add_special_tokens=False)
    for turn in range(3):
        params = SamplingParams(temperature=1.0, max_tokens=6 + turn, seed=turn)
        c = await model.generate(messages, params)
        if previous is not None:
            head = previous.prompt_token_ids + previous.token_ids
            assert c.prompt_token_ids[: len(head)] == head
            forced = [] if previous.token_ids[-1] == model.im_end_id else [model.im_end_id]
            assert c.prompt_token_ids[len(head) : len(head) + len(forced) + len(newline)] == forced + newline
        messages = [
            *messages,
            Message(role="assistant", content=c.text, token_ids=c.token_ids),
            Message(role="tool", content=f"result {turn}", tool_call_id=f"call_{turn}"),
        ]
        previous = c


def test_render_matches_the_chat_template_and_tool_messages_are_user_turns(model: LocalModel) -> None:
    messages = [*chat(), Message(role="assistant", content="It is 4."), Message(role="user", content="Why?")]
    expected = model.tokenizer.apply_chat_template(
        [m.model_dump(include={"role", "content"}) for m in messages], add_generation_prompt=True, tokenize=False
    )
    assert model.tokenizer.decode(model.render(messages)) == expected
    assert model.render(messages) == model.tokenizer.encode(expected, add_special_tokens=False)
    tool = model.tokenizer.decode(model.render_message(Message(role="tool", content="7")))
    assert tool == f"<|im_start|>user\n{TOOL_PREFIX}7<|im_end|>\n"
    assert TOOL_PREFIX.startswith("Tool result:")


async def test_stream_deltas_join_to_the_text(model: LocalModel) -> None:
    params = SamplingParams(temperature=0.9, max_tokens=20, seed=4)
    items = [item async for item in model.stream(chat(), params)]
    *deltas, last = items
    assert isinstance(last, Completion)
    assert all(isinstance(d, str) and d for d in deltas)
    assert len(deltas) > 1
    assert "".join(deltas) == last.text  # type: ignore[arg-type]
    assert last == await model.generate(chat(), params)


async def test_leaving_a_stream_early_does_not_break_the_model(model: LocalModel) -> None:
    agen = model.stream(chat(), SamplingParams(max_tokens=200))
    async for _ in agen:
        break
    await agen.aclose()  # type: ignore[attr-defined]
    c = await asyncio.wait_for(model.generate(chat(), GREEDY), timeout=60)
    assert len(c.token_ids) == 12


async def test_concurrent_greedy_batches_equal_sequential_results(model: LocalModel) -> None:
    prompts = [chat("q" * (i % 5) + f" question {i}" * (1 + i % 3)) for i in range(16)]
    params = [SamplingParams(max_tokens=4 + (i % 4) * 3) for i in range(16)]
    sequential = [await model.generate(p, s) for p, s in zip(prompts, params, strict=True)]
    before = model.batch_sizes.copy()
    batched = await asyncio.gather(*(model.generate(p, s) for p, s in zip(prompts, params, strict=True)))
    grown = model.batch_sizes - before
    assert max(grown) > 1, f"requests were not batched: {dict(grown)}"
    for one, many in zip(sequential, batched, strict=True):
        assert many.token_ids == one.token_ids
        assert many.prompt_token_ids == one.prompt_token_ids
        assert many.finish_reason == one.finish_reason
        torch.testing.assert_close(torch.tensor(many.logprobs), torch.tensor(one.logprobs), atol=1e-4, rtol=0)


async def test_rows_with_different_params_share_a_batch(model: LocalModel) -> None:
    greedy_stop = SamplingParams(max_tokens=20)
    base = await model.generate(chat("a"), greedy_stop)
    piece = model.tokenizer.decode(base.token_ids[2:3], skip_special_tokens=True)
    requests = [
        (chat("a"), SamplingParams(max_tokens=20, stop=[piece])),
        (chat("b"), SamplingParams(temperature=0.8, max_tokens=15, seed=9)),
        (chat("c"), SamplingParams(temperature=1.3, top_p=0.8, max_tokens=10, seed=1)),
        (chat("d"), SamplingParams(max_tokens=7)),
    ]
    alone = [await model.generate(m, p) for m, p in requests]
    together = await asyncio.gather(*(model.generate(m, p) for m, p in requests))
    for one, many in zip(alone, together, strict=True):
        assert many.token_ids == one.token_ids
        assert many.finish_reason == one.finish_reason
    assert together[0].finish_reason == "stop"
    sampled = together[1]
    torch.testing.assert_close(
        torch.tensor(sampled.logprobs), recomputed_logprobs(model, sampled, 0.8), atol=1e-4, rtol=0
    )


async def test_update_weights_from_a_state_dict_changes_logprobs_and_version(tmp_path: Path) -> None:
    m = LocalModel(tiny_model_dir(tmp_path))
    before = await m.generate(chat(), GREEDY)
    state = {k: v + 0.05 * torch.randn_like(v) for k, v in m.hf_model.state_dict().items() if k.endswith("proj.weight")}
    await m.aupdate_weights(state, version=3)
    after = await m.generate(chat(), GREEDY)
    assert m.policy_version == 3 and after.policy_version == 3 and before.policy_version == 0
    assert after.logprobs != before.logprobs
    torch.testing.assert_close(torch.tensor(after.logprobs), recomputed_logprobs(m, after), atol=1e-4, rtol=0)
    with pytest.raises(ModelError):
        m.update_weights({"no.such.weight": torch.zeros(1)}, version=4)
    with pytest.raises(UserError):
        m.update_weights(tmp_path / "missing", version=4)
    assert m.policy_version == 3
    await m.aclose()


async def test_update_weights_from_a_saved_folder_and_a_lora_adapter(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    m = LocalModel(tiny_model_dir(tmp_path / "a", seed=0))
    other_dir = tiny_model_dir(tmp_path / "b", seed=1)
    m.update_weights(other_dir, version=1)
    reference = LocalModel(other_dir)
    got = await m.generate(chat(), GREEDY)
    want = await reference.generate(chat(), GREEDY)
    assert got.token_ids == want.token_ids and got.policy_version == 1
    torch.testing.assert_close(torch.tensor(got.logprobs), torch.tensor(want.logprobs), atol=1e-5, rtol=0)

    base = AutoModelForCausalLM.from_pretrained(other_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    ids = torch.tensor([got.prompt_token_ids])
    with torch.no_grad():
        expected = torch.log_softmax(peft_model(input_ids=ids).logits[0, -1].float(), -1)
    m.update_weights(adapter, version=2)
    merged = await m.generate(chat(), SamplingParams(max_tokens=1))
    assert merged.policy_version == 2
    assert merged.logprobs[0] != pytest.approx(got.logprobs[0], abs=1e-4)
    assert merged.logprobs[0] == pytest.approx(float(expected[merged.token_ids[0]]), abs=1e-4)
    await m.aclose()
    await reference.aclose()


async def test_overlong_prompt_is_a_model_error(model: LocalModel) -> None:
    with pytest.raises(ModelError, match="context"):
        await model.generate(chat("x " * 5000), GREEDY)


async def test_closed_model_refuses_new_requests(tmp_path: Path) -> None:
    m = LocalModel(tiny_model_dir(tmp_path))
    await m.generate(chat(), SamplingParams(max_tokens=2))
    await m.aclose()
    with pytest.raises(ModelError, match="closed"):
        await m.generate(chat(), GREEDY)


def test_bad_specs_are_one_sentence_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_model(f"local:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a model folder"):
        load_model(f"local:{tmp_path / 'empty'}")


def test_load_model_builds_a_local_model_from_a_folder(tiny_dir: Path) -> None:
    m = load_model(f"local:{tiny_dir}", max_batch=4)
    assert isinstance(m, LocalModel) and m.max_batch == 4


@pytest.mark.slow
async def test_embedded_model_answers_a_short_question() -> None:
    m = load_model("local")
    assert isinstance(m, LocalModel)
    messages = [Message(role="user", content="What is the capital of France? Answer in one word.")]
    c = await m.generate(messages, SamplingParams(max_tokens=16))
    assert "paris" in c.text.lower()
    torch.testing.assert_close(torch.tensor(c.logprobs), recomputed_logprobs(m, c), atol=1e-3, rtol=0)
    await m.aclose()
