"""Test helpers: a tiny random-initialised Llama model folder with a ChatML tokenizer.

``tiny_model_dir(tmp_path)`` writes, in well under a second and without any download,
a HF folder that ``LocalModel`` (and the trainer) can load like the embedded model:
a byte-level BPE tokenizer trained on a few sentences (so every string encodes) with
SmolLM2's special tokens (``<|endoftext|>`` = 0, ``<|im_start|>`` = 1, ``<|im_end|>`` = 2)
and chat template, and a 2-layer LlamaForCausalLM with random weights.
"""

from __future__ import annotations

from pathlib import Path

from tether.models.embedded import CHATML_TEMPLATE

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "You are a helpful assistant. Use the tools to answer the question.",
    "What is 2 + 2? The answer is 4. Let me think step by step.",
    '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>',
    "Tool result: 3. The capital of France is Paris. Hello, world!",
    "system user assistant tool answer <answer>42</answer> <think>hmm</think>",
]


def tiny_tokenizer(vocab_size: int = 512):  # type: ignore[no-untyped-def]
    """A small byte-level BPE ``PreTrainedTokenizerFast`` with SmolLM2's special tokens and ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_model_dir(
    tmp_path: Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    init_std: float = 0.2,
    tie_word_embeddings: bool = True,
    name: str = "tiny-llama",
) -> Path:
    """Write a tiny random Llama model + ChatML tokenizer to ``tmp_path/name`` and return the folder.

    ``init_std`` is larger than Llama's default (0.02) so that next-token distributions
    are peaked rather than nearly uniform: greedy decoding has clear winners and
    sampled tokens differ from greedy ones.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(tmp_path) / name
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=init_std,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=tie_word_embeddings,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=2)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
