"""Generate samples for every problem through a Backend and check them in the sandbox, resumably.

A run directory holds ``config.json`` (every setting that shapes the numbers), ``samples.jsonl``
and ``results.jsonl`` (append-only, flushed as produced, fsync'd in batches), ``sessions.jsonl``
(one line per invocation: backend, parallelism, what was already done), a ``.lock`` held by
the process working on it, and at the end ``summary.json`` + ``per_problem.jsonl``. Re-running with the same directory resumes: samples
already on disk are not generated again, verdicts already on disk are not recomputed, and a line
cut short by a crash is dropped and redone. Each backend call carries a seed derived from
(run seed, task ids, chunk index), so a resumed run draws the very samples an uninterrupted one
would have drawn (on a backend that honours seeds).

Generation and execution overlap: while the backend generates the next chunk, a worker thread
runs the finished ones through ``evalkit.sandbox.check_many`` and the docstring-example runner.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.data import Dataset, DatasetError, Problem, read_appended_records
from evalkit.passk import pass_at_k, reportable_ks
from evalkit.ranking import ScoredSample, filtered_pass_at_1, ranking_curves

if TYPE_CHECKING:
    from model.protocol import Backend, Candidate

log = logging.getLogger(__name__)

#: Codex's stop sequences: the body ends where the next top-level statement would start.
CODEX_STOPS = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
#: Everything a verdict can be; only "passed" counts as correct.
STATUSES = ("passed", "failed", "timeout", "memory", "crashed", "output_limit")

#: Most samples handed to the sandbox in one batch (a batch's verdicts are written together).
EXEC_BATCH = 64

CONFIG_FILE = "config.json"
SAMPLES_FILE = "samples.jsonl"
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
PER_PROBLEM_FILE = "per_problem.jsonl"
LOCK_FILE = ".lock"

# Settings that change which samples are drawn or how they are judged: a resume must match them.
_IDENTITY_KEYS = (
    "kind",
    "dataset",
    "dataset_sha256",
    "model",
    "n",
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "limit",
    "samples_per_call",
    "batch_prompts",
    "timeout_s",
    "memory_mb",
    "samples_sha256",
)


class RunError(RuntimeError):
    """A run cannot start or continue; ``str(error)`` is one line naming the fix."""


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Every setting of a generation run; written to ``config.json`` and checked on resume."""

    dataset: str
    dataset_sha256: str
    backend: str
    model: str | None
    n: int = 200
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 300
    stop: tuple[str, ...] = CODEX_STOPS
    seed: int = 0
    limit: int | None = None
    samples_per_call: int = 20
    batch_prompts: int = 1
    timeout_s: float = 10.0
    memory_mb: int = 1024
    kind: str = "run"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data


@dataclass(frozen=True, kw_only=True)
class ExecutionSettings:
    """How samples are checked: sandbox limits and parallelism (workers do not change verdicts)."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    workers: int | None = None
    doctest_timeout_s: float = 1.0


@dataclass
class SampleRecord:
    """One generated (or imported) completion, as stored in ``samples.jsonl``."""

    task_id: str
    sample_idx: int
    completion: str
    token_logprobs: list[float] = field(default_factory=list)
    mean_logprob: float | None = None
    sum_logprob: float | None = None
    finish_reason: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.task_id, self.sample_idx)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> SampleRecord:
        return cls(
            task_id=str(record["task_id"]),
            sample_idx=int(record["sample_idx"]),
            completion=str(record["completion"]),
            token_logprobs=[float(x) for x in record.get("token_logprobs") or []],
            mean_logprob=_optional_float(record.get("mean_logprob")),
            sum_logprob=_optional_float(record.get("sum_logprob")),
            finish_reason=record.get("finish_reason"),
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _finite_or_none(value: float | None) -> float | None:
    # JSON has no -Infinity; an empty completion's mean log-prob is stored as null.
    return value if value is not None and math.isfinite(value) else None


def derive_seed(run_seed: int, *parts: object) -> int:
    """A 31-bit seed for one backend call, stable across processes and Python versions."""
    text = ":".join(str(part) for part in (run_seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


# ----------------------------------------------------------------------------------------------
# The run directory


class RunDirectory:
    """The files of one run; a single writer (the event-loop thread) appends to them."""

    FSYNC_EVERY_S = 2.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handles: dict[Path, Any] = {}
        self._last_fsync = time.monotonic()
        self._lock_handle: Any = None

    def prepare(self, config: dict[str, Any]) -> None:
        """Create the directory or check that its recorded config matches ``config``."""
        config_path = self.path / CONFIG_FILE
        if config_path.exists():
            try:
                recorded = json.loads(config_path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise RunError(
                    f"{config_path} is unreadable ({exc}); use a new --out directory"
                ) from None
            mismatches = [
                f"{key}: recorded {recorded.get(key)!r}, now {config.get(key)!r}"
                for key in _IDENTITY_KEYS
                if recorded.get(key) != config.get(key)
            ]
            if mismatches:
                raise RunError(
                    f"{self.path} holds a run with different settings ({'; '.join(mismatches)}); "
                    "rerun with the recorded settings to resume, or pick a new --out directory"
                )
            self._lock()
            return
        if self.path.exists() and any(p.name != LOCK_FILE for p in self.path.iterdir()):
            raise RunError(
                f"{self.path} exists and is not a docomplete run directory; pick a new --out"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        write_json_atomic(config_path, config)

    def _lock(self) -> None:
        """One process per run directory: two appending to the same files would garble them.

        The kernel drops the lock when the process dies, even by SIGKILL.
        """
        import fcntl

        handle = open(self.path / LOCK_FILE, "w")  # noqa: SIM115 — held until close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunError(
                f"another docomplete process is writing to {self.path}; wait for it to finish "
                "(or stop it), then rerun to resume"
            ) from None
        self._lock_handle = handle

    def _path(self, kind: str) -> Path:
        return self.path / f"{kind}.jsonl"

    def load(self, kind: str) -> list[dict[str, Any]]:
        path = self._path(kind)
        try:
            return read_appended_records(path)
        except DatasetError as exc:
            raise RunError(str(exc)) from None

    def append(self, kind: str, records: Iterable[dict[str, Any]]) -> None:
        path = self._path(kind)
        handle = self._handles.get(path)
        if handle is None:
            handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 — kept open for the run
            self._handles[path] = handle
        # One write per batch of lines: a crash can cut only the tail of the last line.
        handle.write("".join(json.dumps(record) + "\n" for record in records))
        handle.flush()
        if time.monotonic() - self._last_fsync >= self.FSYNC_EVERY_S:
            self.sync()

    def sync(self) -> None:
        for handle in self._handles.values():
            handle.flush()
            os.fsync(handle.fileno())
        self._last_fsync = time.monotonic()

    def close(self) -> None:
        self.sync()
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON via a temp file + rename, so a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# Execution: hidden tests + docstring examples, run off the event loop


def execute_samples(
    groups: Sequence[tuple[Problem, Sequence[SampleRecord]]], settings: ExecutionSettings
) -> list[dict[str, Any]]:
    """Verdict records for samples of one or more problems: hidden tests and docstring examples.

    All hidden tests go to the sandbox in one batch (its warm workers run them in parallel); a
    sample passes only when ``check(entry_point)`` ran to its end. The examples (``>>>`` lines
    of the prompt's docstring) are what the LSP's filter sees: one sandboxed run per problem.
    """
    from evalkit import sandbox

    flat = [(problem, sample) for problem, samples in groups for sample in samples]
    pairs = [
        (problem.program(sample.completion), problem.test_program()) for problem, sample in flat
    ]

    def check(batch: list[tuple[str, str]]) -> list[Any]:
        return sandbox.check_many(
            batch,
            workers=settings.workers,
            timeout_s=settings.timeout_s,
            memory_mb=settings.memory_mb,
        )

    verdicts = check(pairs)
    # A lost sandbox (machine under pressure) also reads "crashed"; a second run tells it
    # apart from a program that really crashes, and keeps verdicts reproducible.
    crashed = [i for i, verdict in enumerate(verdicts) if verdict.status == "crashed"]
    if crashed:
        rerun = check([pairs[i] for i in crashed])
        for i, verdict in zip(crashed, rerun, strict=True):
            verdicts[i] = verdict
    # One doctest run at a time: concurrent run_doctests calls from several threads lost
    # whole sandboxes ("killed while running") here, which would turn into unstable verdicts.
    example_verdicts = [
        verdict
        for problem, samples in groups
        for verdict in run_docstring_examples(
            problem, [sample.completion for sample in samples], settings.doctest_timeout_s
        )
    ]
    records = []
    for (problem, sample), verdict, (examples_passed, examples_total, example_status) in zip(
        flat, verdicts, example_verdicts, strict=True
    ):
        records.append(
            {
                "task_id": sample.task_id,
                "sample_idx": sample.sample_idx,
                "status": verdict.status,
                "passed": verdict.status == "passed",
                "duration_s": round(float(verdict.duration_s), 4),
                "examples_passed": examples_passed,
                "examples_total": examples_total,
                "examples_status": example_status,
                "compiles": program_compiles(problem.program(sample.completion)),
                "error_tail": _tail(verdict.stderr) if verdict.status != "passed" else "",
            }
        )
    return records


def program_compiles(source: str) -> bool:
    """Whether the program is valid Python (compiled, never run: safe outside the sandbox)."""
    try:
        compile(source, "<candidate>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def _tail(text: str | bytes | None, limit: int = 300) -> str:
    if not text:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[-limit:]


def docstring_of(problem: Problem) -> str:
    """The entry point's docstring (where the LSP looks for examples), or the whole prompt."""
    try:
        tree = ast.parse(problem.prompt)
    except SyntaxError:
        return problem.prompt
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name == problem.entry_point
        ):
            return ast.get_docstring(node, clean=False) or ""
    return problem.prompt


def run_docstring_examples(
    problem: Problem, completions: Sequence[str], timeout_s: float
) -> list[tuple[int, int, str]]:
    """``(examples passed, examples total, status)`` per completion, all in one sandboxed run.

    Exactly the LSP's filter: the entry point's ``>>>`` examples, checked by
    ``evalkit.doctest_runner`` with outputs compared outside the sandbox.
    """
    from evalkit import doctest_runner

    examples = doctest_runner.extract_examples(docstring_of(problem))
    if not examples:
        return [(0, 0, "no_examples")] * len(completions)
    # Each candidate is the whole prompt plus its body, so imports and helpers come with it.
    candidates = [problem.program(completion) for completion in completions]
    verdicts = doctest_runner.run_doctests("", candidates, examples, timeout_s=timeout_s)
    if any(v.status == "crashed" for v in verdicts):  # see execute_samples: retry once
        verdicts = doctest_runner.run_doctests("", candidates, examples, timeout_s=timeout_s)
    return [(int(v.passed), int(v.total), str(v.status)) for v in verdicts]


# ----------------------------------------------------------------------------------------------
# The pipeline


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


def _dedupe(records: Iterable[dict[str, Any]], wanted: set[tuple[str, int]]) -> dict:
    """First record per ``(task_id, sample_idx)`` within ``wanted``."""
    kept: dict[tuple[str, int], dict[str, Any]] = {}
    for record in records:
        try:
            key = (str(record["task_id"]), int(record["sample_idx"]))
        except (KeyError, TypeError, ValueError):
            continue
        if key in wanted and key not in kept:
            kept[key] = record
    return kept


class _Progress:
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
    progress: _Progress,
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
    run_dir = RunDirectory(out_dir)
    run_dir.prepare(config.to_json())
    wanted = {(problem.task_id, idx) for problem in problems for idx in range(config.n)}
    samples = _dedupe(run_dir.load("samples"), wanted)
    results = _dedupe(run_dir.load("results"), set(samples))
    calls = [
        call
        for call in plan_calls(problems, config)
        if any((t, i) not in samples for t in call.task_ids for i in call.sample_indices)
    ]
    bar = _Progress(
        total=len(wanted),
        done=len(results),
        passed=sum(bool(r.get("passed")) for r in results.values()),
        enabled=progress,
    )
    started = time.monotonic()
    run_dir.append(
        "sessions",
        [
            {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "backend": config.backend,
                "concurrency": concurrency,
                "workers": execution.workers,
                "samples_on_disk": len(samples),
                "verdicts_on_disk": len(results),
            }
        ],
    )

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
    stored = _dedupe(run_dir.load("samples"), wanted)
    missing = [record for record in samples_records if record.key not in stored]
    if missing:
        run_dir.append("samples", [record.to_json() for record in missing])
        for record in missing:
            stored[record.key] = record.to_json()
    results = _dedupe(run_dir.load("results"), wanted)
    task_ids = {record.task_id for record in samples_records}
    problems = [problem for problem in dataset.problems if problem.task_id in task_ids]
    bar = _Progress(
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
    summary = summarize(problems, list(samples_records), list(results.values()), config=config)
    summary["timing"] = {"last_session_s": round(time.monotonic() - started, 2)}
    write_summary(out_dir, summary)
    return summary


# ----------------------------------------------------------------------------------------------
# Metrics


def summarize(
    problems: Sequence[Problem],
    samples: Sequence[SampleRecord],
    results: Sequence[dict[str, Any]],
    *,
    config: dict[str, Any],
) -> dict[str, Any]:
    """pass@k, filtered pass@1, ranking curves, status counts and the per-problem table."""
    verdicts = {(str(r["task_id"]), int(r["sample_idx"])): r for r in results}
    scored: dict[str, list[ScoredSample]] = {problem.task_id: [] for problem in problems}
    status_counts: Counter[str] = Counter({status: 0 for status in STATUSES})
    per_problem_status: dict[str, Counter[str]] = {p.task_id: Counter() for p in problems}
    examples_total: dict[str, int] = {}
    for sample in sorted(samples, key=lambda s: s.key):
        verdict = verdicts.get(sample.key)
        if verdict is None or sample.task_id not in scored:
            continue
        status_counts[verdict["status"]] += 1
        per_problem_status[sample.task_id][verdict["status"]] += 1
        examples_total[sample.task_id] = int(verdict.get("examples_total") or 0)
        scored[sample.task_id].append(
            ScoredSample(
                passed=bool(verdict["passed"]),
                sum_logprob=sample.sum_logprob if sample.sum_logprob is not None else 0.0,
                mean_logprob=(
                    sample.mean_logprob if sample.mean_logprob is not None else float("-inf")
                ),
                examples_passed=int(verdict.get("examples_passed") or 0),
                compiles=bool(verdict.get("compiles", True)),
            )
        )
    per_problem_samples = [scored[p.task_id] for p in problems if scored[p.task_id]]
    counts = [(len(s), sum(x.passed for x in s)) for s in per_problem_samples]
    ks = reportable_ks([n for n, _ in counts])
    summary: dict[str, Any] = {}
    for k in ks:
        summary[f"pass@{k}"] = sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
    summary["filtered_pass@1"] = filtered_pass_at_1(per_problem_samples)
    sizes = sorted({n for n, _ in counts})
    summary["n"] = sizes[0] if len(sizes) == 1 else (min(sizes) if sizes else 0)
    summary["temperature"] = config.get("temperature")
    summary["top_p"] = config.get("top_p")
    summary["max_tokens"] = config.get("max_tokens")
    summary["seed"] = config.get("seed")
    summary["problems"] = len(counts)
    summary["problems_expected"] = len(problems)
    summary["samples"] = sum(n for n, _ in counts)
    summary["solved_problems"] = sum(1 for _, c in counts if c > 0)
    summary["problems_with_examples"] = sum(1 for t in examples_total.values() if t > 0)
    summary["status_counts"] = dict(status_counts)
    curves = ranking_curves(per_problem_samples)
    summary["ranking"] = {
        name: {str(k): value for k, value in curve.items()} for name, curve in curves.items()
    }
    summary["config"] = config
    table = []
    for problem in problems:
        task_samples = scored[problem.task_id]
        if not task_samples:
            continue
        n, c = len(task_samples), sum(s.passed for s in task_samples)
        row: dict[str, Any] = {"task_id": problem.task_id, "n": n, "correct": c}
        for k in ks:
            row[f"pass@{k}"] = pass_at_k(n, c, k)
        row["filtered_pick_pass"] = filtered_pass_at_1([task_samples])
        row["examples_total"] = examples_total.get(problem.task_id, 0)
        row["status_counts"] = dict(per_problem_status[problem.task_id])
        table.append(row)
    summary["per_problem"] = table
    return summary


def write_summary(out_dir: Path, summary: dict[str, Any]) -> None:
    """``summary.json`` (without the table) and ``per_problem.jsonl``."""
    table = summary.get("per_problem", [])
    write_json_atomic(
        out_dir / SUMMARY_FILE, {k: v for k, v in summary.items() if k != "per_problem"}
    )
    tmp = out_dir / (PER_PROBLEM_FILE + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in table))
    os.replace(tmp, out_dir / PER_PROBLEM_FILE)


def load_run(path: Path) -> tuple[dict[str, Any], list[SampleRecord], list[dict[str, Any]]]:
    """Summary, samples and verdicts of a finished run directory (for reports)."""
    summary_path = path / SUMMARY_FILE
    if not summary_path.is_file():
        raise RunError(
            f"{path} has no {SUMMARY_FILE}: finish it with `docomplete eval run --out {path}` "
            "(same settings) or `docomplete eval score`"
        )
    summary = json.loads(summary_path.read_text())
    samples = [SampleRecord.from_json(r) for r in read_appended_records(path / SAMPLES_FILE)]
    results = read_appended_records(path / RESULTS_FILE)
    return summary, samples, results
