"""Run directories with a known pass rate per problem, written with the runner's own writers."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from evalkit.data import Problem
from evalkit.run_dir import write_json_atomic
from evalkit.runner import RunConfig, SampleRecord, summarize, write_summary


def problems(count: int, prefix: str = "Syn") -> list[Problem]:
    """Problems whose docstrings grow with their index (for the length breakdown)."""
    return [
        Problem(
            task_id=f"{prefix}/{i}",
            prompt=f'def f{i}(x):\n    """{" ".join(["word"] * (12 * i + 3))}."""\n',
            entry_point=f"f{i}",
            canonical_solution="    return x\n",
            test="def check(candidate):\n    assert candidate(1) == 1\n",
        )
        for i in range(count)
    ]


def write_dataset(path: Path, items: Sequence[Problem]) -> Path:
    rows = [
        {
            "task_id": p.task_id,
            "prompt": p.prompt,
            "entry_point": p.entry_point,
            "canonical_solution": p.canonical_solution,
            "test": p.test,
        }
        for p in items
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_run(
    out: Path,
    items: Sequence[Problem],
    rates: Sequence[float],
    *,
    n: int,
    seed: int,
    dataset: str = "synthetic.jsonl",
    dataset_sha256: str = "0" * 64,
    temperature: float = 0.8,
) -> Path:
    """A finished run: each problem's n samples pass with probability ``rates[i]``."""
    rng = random.Random(seed)
    samples, results = [], []
    for problem, rate in zip(items, rates, strict=True):
        for idx in range(n):
            passed = rng.random() < rate
            # Passing samples are a little likelier, so the filter has something to find.
            mean = -rng.random() + (0.3 if passed else 0.0)
            samples.append(
                SampleRecord(
                    task_id=problem.task_id,
                    sample_idx=idx,
                    completion="    return x\n" if passed else "    return 0\n",
                    token_logprobs=[mean],
                    mean_logprob=mean,
                    sum_logprob=mean,
                    finish_reason="stop",
                )
            )
            results.append(
                {
                    "task_id": problem.task_id,
                    "sample_idx": idx,
                    "status": "passed" if passed else "failed",
                    "passed": passed,
                    "duration_s": 0.01,
                    "examples_passed": 0,
                    "examples_total": 0,
                    "examples_status": "no_examples",
                    "compiles": True,
                    "error_tail": "",
                }
            )
    config = RunConfig(
        dataset=dataset,
        dataset_sha256=dataset_sha256,
        backend="synthetic",
        model=None,
        n=n,
        temperature=temperature,
        seed=seed,
    ).to_json()
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", config)
    (out / "samples.jsonl").write_text("".join(json.dumps(s.to_json()) + "\n" for s in samples))
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    write_summary(out, summarize(items, samples, results, config=config))
    return out
