"""The engine on tiny random models of several architectures: greedy tokens equal HF ``generate``
and log-probs equal ``log_softmax`` of a plain forward pass (no downloads: random weights)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from model.engine import Engine
from model.protocol import SamplingParams
from tests.fixtures.tiny_model import build_tiny_tokenizer

PROMPTS = [
    'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n',
    "import os\n",
]
MAX_TOKENS = 12
#: Sliding windows shorter than prompt + completion, so the window really cuts attention.
WINDOW = 8


def _configs() -> dict[str, tuple[Callable[..., Any], dict[str, Any]]]:
    import transformers as tf

    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    heads = {"num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128}
    gpt = {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 128}
    return {
        "gpt2": (tf.GPT2Config, gpt),
        "gpt_bigcode": (tf.GPTBigCodeConfig, {**gpt, "multi_query": True}),
        "starcoder2": (tf.Starcoder2Config, {**small, **heads}),
        "qwen2": (tf.Qwen2Config, {**small, **heads}),
        "mistral": (tf.MistralConfig, {**small, **heads, "sliding_window": WINDOW}),
        "gemma2": (
            tf.Gemma2Config,
            {**small, **heads, "head_dim": 8, "sliding_window": WINDOW},
        ),
    }


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoTokenizer

    path: Path = tmp_path_factory.mktemp("arch-tokenizer")
    build_tiny_tokenizer(path)
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def _tiny_model(architecture: str, tokenizer: Any) -> Any:
    from transformers import AutoModelForCausalLM

    config_class, sizes = _configs()[architecture]
    config = config_class(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **sizes,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    # Wider output weights make the argmax clear-cut, so greedy comparisons are not decided by
    # float rounding differences between two correct attention implementations.
    with torch.no_grad():
        model.get_output_embeddings().weight.normal_(0.0, 0.3)
    return model.eval()


def _hf_greedy(model: Any, prompt_ids: list[int], eos: int) -> list[int]:
    out = model.generate(
        torch.tensor([prompt_ids]),
        attention_mask=torch.ones((1, len(prompt_ids)), dtype=torch.long),
        do_sample=False,
        max_new_tokens=MAX_TOKENS,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    new = out[0, len(prompt_ids) :].tolist()
    return new[: new.index(eos)] if eos in new else new


def _forward_logprobs(model: Any, prompt_ids: list[int], token_ids: tuple[int, ...]) -> list[float]:
    """The raw log-prob of each generated token under one plain forward pass."""
    ids = torch.tensor([[*prompt_ids, *token_ids]])
    with torch.no_grad():
        logits = model(ids).logits[0].float()  # (L, V)
    logprobs = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)  # (T, V)
    return logprobs.gather(1, torch.tensor(token_ids).unsqueeze(1)).squeeze(1).tolist()


@pytest.mark.parametrize("architecture", list(_configs()))
def test_engine_matches_transformers(architecture: str, tokenizer: Any) -> None:
    model = _tiny_model(architecture, tokenizer)
    engine = Engine(model, tokenizer, name=architecture)
    # Architectures the engine knows share each prompt's keys among its samples; n > 1 and
    # prompts of different lengths exercise that path (and left padding everywhere).
    assert engine.shared_prefix == (architecture == "qwen2")
    n = 3 if engine.shared_prefix else 2
    eos = tokenizer.eos_token_id
    prompt_ids = [engine.encode(p) for p in PROMPTS]

    greedy = engine.generate(PROMPTS, SamplingParams(n=n, temperature=0, max_tokens=MAX_TOKENS))
    for ids, candidates in zip(prompt_ids, greedy, strict=True):
        expected = _hf_greedy(model, ids, eos)
        assert len(expected) >= 4  # a real continuation, not an immediate EOS
        assert [list(c.token_ids) for c in candidates] == [expected] * n

    sampled = engine.generate(
        PROMPTS, SamplingParams(n=n, temperature=1.0, top_p=1.0, max_tokens=MAX_TOKENS, seed=5)
    )
    for ids, candidates in zip(prompt_ids, sampled, strict=True):
        assert len({c.token_ids for c in candidates}) > 1  # the samples really differ
        for candidate in candidates:
            reference = _forward_logprobs(model, ids, candidate.token_ids)
            assert candidate.token_logprobs == pytest.approx(reference, abs=1e-4)
