"""The resumable infilling run: ask the backend for every masked line, judge it in the sandbox.

The run directory works like ``eval run``'s (``evalkit.run_dir``): ``config.json`` checked on
resume, append-only ``samples.jsonl`` (the raw answer and the line kept) and ``results.jsonl``
(verdicts), a lock, and at the end ``summary.json``, ``per_problem.jsonl`` and
``per_task.jsonl``. Each backend call's seed comes from (run seed, task ids, chunk), so a
resumed run draws what an uninterrupted one would have drawn. The sandbox checks one batch
while the backend generates the next.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.infill import InfillConfig, InfillTask, Prompting, check_lines, first_line
from evalkit.infill import infill_summary as summarize_infill
from evalkit.run_dir import (
    PER_PROBLEM_FILE,
    SUMMARY_FILE,
    write_json_atomic,
)
from evalkit.runner import EXEC_BATCH, ExecutionSettings, derive_seed, open_session

if TYPE_CHECKING:
    from model.protocol import Backend

PER_TASK_FILE = "per_task.jsonl"


@dataclass(frozen=True)
class _Call:
    task_ids: tuple[str, ...]
    sample_indices: tuple[int, ...]
    seed: int


def plan_infill_calls(tasks: Sequence[InfillTask], config: InfillConfig) -> list[_Call]:
    """Every backend call of the run, fixed by the config alone (a resume repeats them)."""
    calls = []
    chunk = max(1, min(config.samples_per_call, config.n))
    for start in range(0, len(tasks), max(1, config.batch_prompts)):
        task_ids = tuple(task.task_id for task in tasks[start : start + config.batch_prompts])
        for chunk_idx, first in enumerate(range(0, config.n, chunk)):
            indices = tuple(range(first, min(first + chunk, config.n)))
            calls.append(_Call(task_ids, indices, derive_seed(config.seed, *task_ids, chunk_idx)))
    return calls


def _verdict_records(
    batch: list[dict[str, Any]], by_id: dict[str, InfillTask], execution: ExecutionSettings
) -> list[dict[str, Any]]:
    answers = [(by_id[record["task_id"]], str(record["line"])) for record in batch]
    verdicts = check_lines(
        answers,
        timeout_s=execution.timeout_s,
        memory_mb=execution.memory_mb,
        workers=execution.workers,
    )
    return [
        {
            "task_id": record["task_id"],
            "sample_idx": record["sample_idx"],
            "status": verdict.status,
            "passed": verdict.status == "passed",
            "exact_match": line.strip() == task.middle.strip(),
            "duration_s": round(float(verdict.duration_s), 4),
            "error_tail": "" if verdict.status == "passed" else (verdict.stderr or "")[-300:],
        }
        for record, (task, line), verdict in zip(batch, answers, verdicts, strict=True)
    ]


async def run_infill(
    tasks: Sequence[InfillTask],
    prompting: Prompting,
    config: InfillConfig,
    backend: Backend,
    out_dir: Path,
    *,
    dataset_ids: Sequence[str],
    dataset_tasks: int,
    look_alikes: set[str] | None = None,
    execution: ExecutionSettings | None = None,
    concurrency: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate and judge every sample of the run in ``out_dir`` (resuming); return the summary."""
    from model.protocol import SamplingParams

    execution = execution or ExecutionSettings(
        timeout_s=config.timeout_s, memory_mb=config.memory_mb
    )
    by_id = {task.task_id: task for task in tasks}
    session = open_session(
        out_dir,
        config.to_json(),
        [task.task_id for task in tasks],
        config.n,
        plan_infill_calls(tasks, config),
        backend=config.backend,
        concurrency=concurrency,
        workers=execution.workers,
        progress=progress,
    )
    run_dir, samples, results, calls, bar = (
        session.run_dir,
        session.samples,
        session.results,
        session.calls,
        session.bar,
    )
    started = time.monotonic()
    queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue()

    def submit(records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), EXEC_BATCH):
            queue.put_nowait(records[start : start + EXEC_BATCH])

    async def generate() -> None:
        limiter = asyncio.Semaphore(max(1, concurrency))

        async def one_call(call: _Call) -> None:
            async with limiter:
                params = SamplingParams(
                    n=len(call.sample_indices),
                    temperature=config.temperature,
                    top_p=config.top_p,
                    max_tokens=config.max_tokens,
                    stop=config.stop,
                    seed=call.seed,
                )
                prompts = [prompting.prompt(by_id[t]) for t in call.task_ids]
                answers = await backend.complete(prompts, params)
            fresh: list[dict[str, Any]] = [
                {
                    "task_id": task_id,
                    "sample_idx": idx,
                    "completion": candidate.text,
                    "line": first_line(candidate.text),
                    "mean_logprob": _finite_or_none(candidate.mean_logprob),
                    "finish_reason": candidate.finish_reason,
                }
                for task_id, candidates in zip(call.task_ids, answers, strict=True)
                for idx, candidate in zip(call.sample_indices, candidates, strict=True)
                if (task_id, idx) not in samples  # written before a crash: keep the first
            ]
            if fresh:
                run_dir.append("samples", fresh)
                samples.update({(r["task_id"], r["sample_idx"]): r for r in fresh})
                bar.add_generated(len(fresh))
                submit(fresh)

        pending = [asyncio.ensure_future(one_call(call)) for call in calls]
        try:
            await asyncio.gather(*pending)
        finally:
            for future in pending:
                future.cancel()

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalkit-infill")

    async def check() -> None:
        loop = asyncio.get_running_loop()
        while (batch := await queue.get()) is not None:
            records = await loop.run_in_executor(pool, _verdict_records, batch, by_id, execution)
            run_dir.append("results", records)
            results.update({(r["task_id"], r["sample_idx"]): r for r in records})
            bar.add_checked(records)

    submit([record for key, record in samples.items() if key not in results])
    checking = asyncio.ensure_future(check())
    generation = asyncio.ensure_future(generate())
    try:
        await _finish(generation, checking, lambda: queue.put_nowait(None))
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
        run_dir.close()
    summary, problem_rows, task_rows = summarize_infill(
        tasks,
        results.values(),
        config=config.to_json(),
        dataset_ids=dataset_ids,
        dataset_tasks=dataset_tasks,
        look_alikes=look_alikes,
    )
    summary["timing"] = {"last_session_s": round(time.monotonic() - started, 2)}
    write_json_atomic(out_dir / SUMMARY_FILE, summary)
    for name, rows in ((PER_PROBLEM_FILE, problem_rows), (PER_TASK_FILE, task_rows)):
        (out_dir / name).write_text("".join(_json_line(row) for row in rows))
    return summary


async def _finish(
    generation: asyncio.Future[None], checking: asyncio.Future[None], close: Callable[[], None]
) -> None:
    """Wait for both; a broken sandbox stops generation at once, while a backend error lets the
    verdicts of what was generated be written first (a rerun resumes from there)."""
    try:
        await asyncio.wait({generation, checking}, return_when=asyncio.FIRST_COMPLETED)
        if checking.done():  # it ends early only by failing
            generation.cancel()
            checking.result()
        generation_error = generation.exception()
        close()
        await checking
        if generation_error is not None:
            raise generation_error
    finally:
        for future in (generation, checking):
            future.cancel()


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _json_line(row: dict[str, Any]) -> str:
    return json.dumps(row) + "\n"
