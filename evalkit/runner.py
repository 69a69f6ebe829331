"""Generate samples for every problem through a Backend and check them in the sandbox, resumably.

The run directory and how a resume finds what is already done live in ``evalkit.run_dir``; the
checks of one batch of samples in ``evalkit.verdicts``; the numbers in ``evalkit.summary``. Each
backend call carries a seed derived from (run seed, task ids, chunk index), so a resumed run
draws the very samples an uninterrupted one would have drawn (on a backend that honours seeds).

Generation and execution overlap: while the backend generates the next chunk, a worker thread
runs the finished ones through ``evalkit.sandbox.check_many`` and the docstring-example runner.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.data import Dataset, Problem
from evalkit.run_dir import (
    CODEX_STOPS,
    RunConfig,
    RunDirectory,
    RunError,
    SampleRecord,
    dedupe_records,
    load_run,
)
from evalkit.summary import summarize, write_summary
from evalkit.verdicts import ExecutionSettings, execute_samples

if TYPE_CHECKING:
    from model.protocol import Backend, Candidate

# The names callers import from here: the runner is the evalkit run's public face.
__all__ = [
    "CODEX_STOPS",
    "EXEC_BATCH",
    "ExecutionSettings",
    "ProgressBar",
    "RunConfig",
    "RunDirectory",
    "RunError",
    "SampleRecord",
    "derive_seed",
    "execute_samples",
    "load_run",
    "plan_calls",
    "run_generation",
    "run_scoring",
    "summarize",
    "write_summary",
]

log = logging.getLogger(__name__)

#: Most samples handed to the sandbox in one batch (a batch's verdicts are written together).
EXEC_BATCH = 64


def _finite_or_none(value: float | None) -> float | None:
    # JSON has no -Infinity; an empty completion's mean log-prob is stored as null.
    return value if value is not None and math.isfinite(value) else None


def derive_seed(run_seed: int, *parts: object) -> int:
    """A 31-bit seed for one backend call, stable across processes and Python versions."""
    text = ":".join(str(part) for part in (run_seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class _Call:
    """One backend call: the same chunk of sample indices for up to ``batch_prompts`` problems."""

    task_ids: tuple[str, ...]
    sample_indices: tuple[int, ...]
    seed: int


def plan_calls(problems: Sequence[Problem], config: RunConfig) -> list[_Call]:
    """All backend calls of a run, fixed by the config alone (so a resume repeats them exactly).

    Several prompts share a call because the in-process engine serves one call at a time and is
    several times faster on a bigger batch. They share its seed too: each problem's samples are
    still drawn exactly as sampling prescribes, only the random streams of problems in one group
    are aligned (which leaves every per-problem estimate, and so pass@k, unbiased).
    """
    calls: list[_Call] = []
    chunk = max(1, min(config.samples_per_call, config.n))
    group = max(1, config.batch_prompts)
    for start in range(0, len(problems), group):
        task_ids = tuple(problem.task_id for problem in problems[start : start + group])
        for chunk_idx, first in enumerate(range(0, config.n, chunk)):
            indices = tuple(range(first, min(first + chunk, config.n)))
            seed = derive_seed(config.seed, *task_ids, chunk_idx)
            calls.append(_Call(task_ids, indices, seed))
    return calls


class ProgressBar:
    """tqdm bar over checked samples, with the running pass rate; silent when disabled."""

    def __init__(self, total: int, done: int, passed: int, enabled: bool) -> None:
        self.passed = passed
        self.done = done
        self.generated = 0
        self.bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(
                    total=total, initial=done, unit="sample", file=sys.stderr, dynamic_ncols=True
                )
                self._postfix()

    def _postfix(self) -> None:
        if self.bar is not None:
            rate = self.passed / self.done if self.done else 0.0
            generated = f", generated {self.generated}" if self.generated else ""
            self.bar.set_postfix_str(f"pass {rate:.1%}{generated}", refresh=False)

    def add_generated(self, count: int) -> None:
        self.generated += count
        self._postfix()

    def add_checked(self, records: Sequence[dict[str, Any]]) -> None:
        self.done += len(records)
        self.passed += sum(bool(r["passed"]) for r in records)
        if self.bar is not None:
            self.bar.update(len(records))
            self._postfix()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def _execute_pipeline(
    run_dir: RunDirectory,
    problems_by_id: dict[str, Problem],
    samples: dict[tuple[str, int], dict[str, Any]],
    results: dict[tuple[str, int], dict[str, Any]],
    execution: ExecutionSettings,
    progress: ProgressBar,
    generate: Callable[[Callable[[list[SampleRecord]], None]], Any] | None,
) -> None:
    """Check every sample lacking a verdict, overlapping with ``generate`` when given."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalkit-exec")
    pending: set[asyncio.Future[None]] = set()
    failure: list[BaseException] = []
    generation: asyncio.Future[Any] | None = None

    def note_failure(future: asyncio.Future[None]) -> None:
        if future.cancelled() or future.exception() is None:
            return
        failure.append(future.exception())  # type: ignore[arg-type]
        if generation is not None:
            generation.cancel()  # a broken sandbox must stop the run, not burn the model

    async def check(groups: list[tuple[Problem, list[SampleRecord]]]) -> None:
        queued = time.monotonic()
        records = await loop.run_in_executor(pool, execute_samples, groups, execution)
        log.debug(
            "checked %d samples of %d problems in %.2fs (incl. queueing)",
            len(records),
            len(groups),
            time.monotonic() - queued,
        )
        run_dir.append("results", records)
        for record in records:
            results[(record["task_id"], int(record["sample_idx"]))] = record
        progress.add_checked(records)

    def submit(batch: list[SampleRecord]) -> None:
        by_task: dict[str, list[SampleRecord]] = {}
        for sample in batch:
            by_task.setdefault(sample.task_id, []).append(sample)
        # Jobs of up to EXEC_BATCH samples, so the sandbox's workers always have enough to do.
        job: list[tuple[Problem, list[SampleRecord]]] = []
        size = 0
        for task_id, task_samples in by_task.items():
            for start in range(0, len(task_samples), EXEC_BATCH):
                part = task_samples[start : start + EXEC_BATCH]
                if size + len(part) > EXEC_BATCH and job:
                    start_job(job)
                    job, size = [], 0
                job.append((problems_by_id[task_id], part))
                size += len(part)
        if job:
            start_job(job)

    def start_job(job: list[tuple[Problem, list[SampleRecord]]]) -> None:
        future = asyncio.ensure_future(check(job))
        pending.add(future)
        future.add_done_callback(pending.discard)
        future.add_done_callback(note_failure)

    # Samples generated by an earlier, interrupted run but never checked.
    unchecked = [
        SampleRecord.from_json(record) for key, record in samples.items() if key not in results
    ]
    if unchecked:
        submit(unchecked)
    try:
        generation_error: Exception | None = None
        if generate is not None:
            generation = asyncio.ensure_future(generate(submit))
            try:
                await generation
            except asyncio.CancelledError:
                if not failure:
                    raise
            except Exception as exc:  # e.g. the model server went away
                # Verdicts for what was generated are worth keeping: finish them, then report.
                generation_error = exc
        while pending and not failure:
            await asyncio.wait(set(pending))
        if failure:
            raise failure[0]
        if generation_error is not None:
            raise generation_error
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Session:
    """A run directory opened for one session: what is on disk, what is left, the progress bar."""

    run_dir: RunDirectory
    samples: dict
    results: dict
    calls: list
    bar: ProgressBar


def open_session(
    out_dir: Path,
    config_json: dict[str, Any],
    task_ids: Sequence[str],
    n: int,
    planned_calls: Sequence[Any],
    *,
    backend: Any,
    concurrency: int,
    workers: int | None,
    progress: bool,
) -> Session:
    """Prepare (or resume) ``out_dir``: load the samples and verdicts already written, keep the
    planned calls that still miss a sample, and log the session. Shared by ``eval run`` and
    ``eval infill``."""
    run_dir = RunDirectory(out_dir)
    run_dir.prepare(config_json)
    wanted = {(task_id, idx) for task_id in task_ids for idx in range(n)}
    samples = dedupe_records(run_dir.load("samples"), wanted)
    results = dedupe_records(run_dir.load("results"), set(samples))
    calls = [
        call
        for call in planned_calls
        if any((t, i) not in samples for t in call.task_ids for i in call.sample_indices)
    ]
    bar = ProgressBar(
        total=len(wanted),
        done=len(results),
        passed=sum(bool(r.get("passed")) for r in results.values()),
        enabled=progress,
    )
    run_dir.append(
        "sessions",
        [
            {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "backend": backend,
                "concurrency": concurrency,
                "workers": workers,
                "samples_on_disk": len(samples),
                "verdicts_on_disk": len(results),
            }
        ],
    )
    return Session(run_dir, samples, results, calls, bar)


def _candidate_record(task_id: str, sample_idx: int, candidate: Candidate) -> SampleRecord:
    logprobs = [float(x) for x in candidate.token_logprobs]
    return SampleRecord(
        task_id=task_id,
        sample_idx=sample_idx,
        completion=candidate.text,
        token_logprobs=logprobs,
        mean_logprob=_finite_or_none(candidate.mean_logprob),
        sum_logprob=float(sum(logprobs)),
        finish_reason=candidate.finish_reason,
    )


async def run_generation(
    config: RunConfig,
    dataset: Dataset,
    backend: Backend,
    out_dir: Path,
    *,
    execution: ExecutionSettings | None = None,
    concurrency: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate and check every sample of the run in ``out_dir`` (resuming); return the summary."""
    from model.protocol import SamplingParams

    execution = execution or ExecutionSettings(
        timeout_s=config.timeout_s, memory_mb=config.memory_mb
    )
    problems = list(dataset.problems[: config.limit] if config.limit else dataset.problems)
    problems_by_id = {problem.task_id: problem for problem in problems}
    session = open_session(
        out_dir,
        config.to_json(),
        [p.task_id for p in problems],
        config.n,
        plan_calls(problems, config),
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

    async def generate(submit: Callable[[list[SampleRecord]], None]) -> None:
        # Calls in flight at once: a model server batches them; the embedded engine queues them.
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
                prompts = [problems_by_id[t].prompt for t in call.task_ids]
                call_started = time.monotonic()
                answers = await backend.complete(prompts, params)
                log.debug(
                    "generated %d × %d samples in %.2fs",
                    len(prompts),
                    params.n,
                    time.monotonic() - call_started,
                )
            fresh: list[SampleRecord] = []
            for task_id, candidates in zip(call.task_ids, answers, strict=True):
                for sample_idx, candidate in zip(call.sample_indices, candidates, strict=True):
                    if (task_id, sample_idx) in samples:
                        continue  # written before a crash; the same seed redrew it
                    fresh.append(_candidate_record(task_id, sample_idx, candidate))
            if fresh:
                run_dir.append("samples", [s.to_json() for s in fresh])
                for sample in fresh:
                    samples[sample.key] = sample.to_json()
                bar.add_generated(len(fresh))
                submit(fresh)

        tasks = [asyncio.ensure_future(one_call(call)) for call in calls]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    try:
        await _execute_pipeline(run_dir, problems_by_id, samples, results, execution, bar, generate)
    finally:
        bar.close()
        run_dir.close()
    summary = summarize(
        problems,
        [SampleRecord.from_json(r) for r in samples.values()],
        list(results.values()),
        config=config.to_json(),
        dataset_ids=[problem.task_id for problem in dataset.problems],
    )
    summary["timing"] = {"last_session_s": round(time.monotonic() - started, 2)}
    write_summary(out_dir, summary)
    return summary


async def run_scoring(
    samples_records: Sequence[SampleRecord],
    dataset: Dataset,
    out_dir: Path,
    config: dict[str, Any],
    *,
    execution: ExecutionSettings,
    progress: bool = True,
) -> dict[str, Any]:
    """Check samples produced elsewhere (resuming in ``out_dir``); return the summary."""
    by_id = dataset.by_id()
    run_dir = RunDirectory(out_dir)
    run_dir.prepare(config)
    wanted = {record.key for record in samples_records}
    stored = dedupe_records(run_dir.load("samples"), wanted)
    missing = [record for record in samples_records if record.key not in stored]
    if missing:
        run_dir.append("samples", [record.to_json() for record in missing])
        for record in missing:
            stored[record.key] = record.to_json()
    results = dedupe_records(run_dir.load("results"), wanted)
    task_ids = {record.task_id for record in samples_records}
    problems = [problem for problem in dataset.problems if problem.task_id in task_ids]
    bar = ProgressBar(
        total=len(wanted),
        done=len(results),
        passed=sum(bool(r.get("passed")) for r in results.values()),
        enabled=progress,
    )
    started = time.monotonic()
    try:
        await _execute_pipeline(run_dir, by_id, stored, results, execution, bar, None)
    finally:
        bar.close()
        run_dir.close()
    summary = summarize(
        problems,
        list(samples_records),
        list(results.values()),
        config=config,
        dataset_ids=[problem.task_id for problem in dataset.problems],
    )
    summary["timing"] = {"last_session_s": round(time.monotonic() - started, 2)}
    write_summary(out_dir, summary)
    return summary
