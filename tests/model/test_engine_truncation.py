"""A prompt longer than the context is cut from the left, and the BOS token the tokenizer put
in front of it stays (models see BOS first in training; without it every logit changes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from model.engine import Engine, GenerationRequest
from model.protocol import SamplingParams

CONTEXT = 64
MAX_TOKENS = 8


def _bos_adding_tokenizer(tiny_model_path: Path) -> Any:
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_path), local_files_only=True)
    bos, bos_id = tokenizer.bos_token, tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, bos_id)]
    )
    return tokenizer


def test_left_truncation_keeps_the_bos_token(tiny_model_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _bos_adding_tokenizer(tiny_model_path)
    bos = tokenizer.bos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=CONTEXT,
        bos_token_id=bos,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.3)
    engine = Engine(model, tokenizer, name="bos")

    prompt = "".join(f"x{i} = {i}\n" for i in range(40))
    ids = engine.encode(prompt)
    assert ids[0] == bos and len(ids) > CONTEXT
    request = GenerationRequest(prompt, SamplingParams(temperature=0, max_tokens=MAX_TOKENS))
    engine.run([request])

    room = CONTEXT - MAX_TOKENS
    assert request.prompt_tokens == room
    [candidate] = request.results
    with_bos = [bos, *ids[len(ids) - room + 1 :]]
    without_bos = ids[len(ids) - room :]
    expected = _logprobs(model, with_bos, candidate.token_ids)
    assert candidate.token_logprobs == pytest.approx(expected, abs=1e-4)
    # The check has teeth: the same tail without BOS scores the tokens differently.
    assert _logprobs(model, without_bos, candidate.token_ids) != pytest.approx(expected, abs=1e-4)


def _logprobs(model: Any, prompt_ids: list[int], token_ids: tuple[int, ...]) -> list[float]:
    ids = torch.tensor([[*prompt_ids, *token_ids]])
    with torch.no_grad():
        logits = model(ids).logits[0].float()  # (L, V)
    logprobs = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)  # (T, V)
    return logprobs.gather(1, torch.tensor(token_ids).unsqueeze(1)).squeeze(1).tolist()
