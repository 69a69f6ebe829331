"""llama.cpp's greedy output on the exported GGUF equals the engine's, token for token."""

from __future__ import annotations

from pathlib import Path

import httpx

from model.sampling_bench import humaneval_prompts

MAX_TOKENS = 48
PROMPT_INDEXES = (0, 2, 7, 12, 23, 53)


def test_greedy_tokens_equal_the_engines(model_dir: Path, llama_server: str) -> None:
    from model.engine import Engine
    from model.protocol import SamplingParams

    prompts = [humaneval_prompts(164)[i] for i in PROMPT_INDEXES]
    engine = Engine.load(model_dir)
    ours = engine.generate(prompts, SamplingParams(n=1, temperature=0.0, max_tokens=MAX_TOKENS))
    eos = engine.tokenizer.eos_token_id
    with httpx.Client(base_url=llama_server, timeout=300) as client:
        for prompt, [candidate] in zip(prompts, ours, strict=True):
            answer = client.post(
                "/completion",
                json={
                    "prompt": prompt,
                    "n_predict": MAX_TOKENS,
                    "temperature": 0.0,
                    "top_k": 1,
                    "return_tokens": True,
                    "cache_prompt": False,
                },
            )
            assert answer.status_code == 200, answer.text
            theirs = [t for t in answer.json()["tokens"] if t != eos]
            mine = [t for t in candidate.token_ids if t != eos]
            assert theirs == mine, f"prompt {prompt[:60]!r}"
            assert answer.json()["content"] == candidate.text
