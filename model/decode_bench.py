"""``docomplete bench decode``: milliseconds per decode step of the embedded engine, n=1 and n=4.

What an editor's request waits for, step by step: one forward pass of the batch's rows, the
token choice (temperature + top-p) and the engine's per-row bookkeeping (stop strings, scope).
The engine decodes a HumanEval prompt with its end-of-sequence tokens ignored, so every step
keeps all ``n`` rows and every run takes the same number of steps; runs repeat and the median
is reported. CPU time (the process's, not wall time) is printed beside wall time: on a machine
shared with other jobs it moves much less than wall time, and with one thread it is the work
a step really costs.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StepFigures:
    """Per-step medians over the runs of one ``n`` (milliseconds)."""

    n: int
    wall_ms: float
    cpu_ms: float
    forward_ms: float
    sample_ms: float
    prefill_ms: float


def measure_steps(
    engine: Any, prompt: str, n: int, *, steps: int, repeats: int, seed: int = 0
) -> StepFigures:
    """Decode ``prompt`` ``repeats`` times for ``steps`` tokens with ``n`` rows; medians."""
    from model.protocol import SamplingParams

    params = SamplingParams(n=n, temperature=0.8, top_p=0.95, max_tokens=steps + 1, seed=seed)
    engine.generate([prompt], params)  # warm-up: allocator, kernels, thread tuner
    wall: list[float] = []
    cpu: list[float] = []
    forward: list[float] = []
    sample: list[float] = []
    prefill: list[float] = []
    for _ in range(repeats):
        before = _snapshot(engine.stats)
        wall_started, cpu_started = time.perf_counter(), time.process_time()
        engine.generate([prompt], params)
        wall_s, cpu_s = time.perf_counter() - wall_started, time.process_time() - cpu_started
        after = _snapshot(engine.stats)
        done = after["decode_steps"] - before["decode_steps"]
        prefill_s = after["prefill_seconds"] - before["prefill_seconds"]
        # The prefill's share of CPU time is taken as its share of wall time.
        cpu_prefill = cpu_s * prefill_s / wall_s if wall_s > 0 else 0.0
        wall.append((wall_s - prefill_s) / done)
        cpu.append((cpu_s - cpu_prefill) / done)
        forward.append((after["forward_seconds"] - before["forward_seconds"]) / done)
        sample.append((after["sample_seconds"] - before["sample_seconds"]) / done)
        prefill.append(prefill_s)
    return StepFigures(
        n=n,
        wall_ms=1000 * statistics.median(wall),
        cpu_ms=1000 * statistics.median(cpu),
        forward_ms=1000 * statistics.median(forward),
        sample_ms=1000 * statistics.median(sample),
        prefill_ms=1000 * statistics.median(prefill),
    )


def _snapshot(stats: Any) -> dict[str, float]:
    names = ("decode_steps", "prefill_seconds", "forward_seconds", "sample_seconds")
    return {name: float(getattr(stats, name)) for name in names}


def run_decode_bench(
    model_path: Path,
    *,
    ns: tuple[int, ...],
    steps: int,
    repeats: int,
    threads: int | str | None,
    json_path: str | None,
    matmul_dtype: str | None = None,
) -> dict[str, Any]:
    """Load ``model_path`` as the editor does and print ms per decode step for each ``n``."""
    import torch

    from model.cli_support import emit_bench
    from model.engine import Engine
    from model.sampling_bench import humaneval_prompts

    engine = Engine.load(model_path, threads=threads, matmul_dtype=matmul_dtype)
    dtypes = {str(p.dtype).removeprefix("torch.") for p in engine.model.parameters()}
    weights = "+".join(sorted(dtypes))
    # Every row decodes all ``steps`` tokens: the figure is per step of a full batch.
    engine.eos_token_ids = frozenset()
    prompt = humaneval_prompts(1)[0]
    prompt_tokens = engine.count_tokens(prompt)
    results = []
    for n in ns:
        figures = measure_steps(engine, prompt, n, steps=steps, repeats=repeats)
        print(f"  n={n}: {figures.wall_ms:.2f} ms/step", file=sys.stderr)
        results.append(figures)
    out: dict[str, Any] = {
        "model": str(model_path),
        "implementation": engine.implementation,
        "threads": threads if threads is not None else torch.get_num_threads(),
        "weight_dtypes": weights,
        "prompt_tokens": prompt_tokens,
        "steps": steps,
        "repeats": repeats,
    }
    for f in results:
        out[f"ms_per_step_n{f.n}"] = round(f.wall_ms, 3)
        out[f"cpu_ms_per_step_n{f.n}"] = round(f.cpu_ms, 3)
        out[f"forward_ms_n{f.n}"] = round(f.forward_ms, 3)
        out[f"sample_ms_n{f.n}"] = round(f.sample_ms, 3)
        out[f"prefill_ms_n{f.n}"] = round(f.prefill_ms, 2)
    emit_bench(
        f"Decode steps: {engine.name}, {prompt_tokens}-token prompt, {steps} steps x "
        f"{repeats} runs, threads {out['threads']}, weights {weights} (medians; wall / process CPU)",
        ["n", "ms/step", "CPU ms/step", "forward ms", "sampling ms", "prefill ms"],
        [[f.n, f.wall_ms, f.cpu_ms, f.forward_ms, f.sample_ms, f.prefill_ms] for f in results],
        out,
        json_path,
    )
    return out
