"""The run directory: its config check, lock and append-only sample and verdict files (resume).

A run directory holds ``config.json`` (every setting that shapes the numbers), ``samples.jsonl``
and ``results.jsonl`` (append-only, flushed as produced, fsync'd in batches), ``sessions.jsonl``
(one line per invocation: backend, parallelism, what was already done), a ``.lock`` held by
the process working on it, and at the end ``summary.json`` + ``per_problem.jsonl``. Re-running
with the same directory resumes: samples already on disk are not generated again, verdicts
already on disk are not recomputed, and a line cut short by a crash is dropped and redone.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evalkit.candidate_policy import DEFAULT_N
from evalkit.data import DatasetError, read_appended_records

#: Codex's stop sequences: the body ends where the next top-level statement would start.
CODEX_STOPS = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")

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
    # eval infill: how the hole is asked for, and which problems' lines are masked
    "prompting",
    "fim_template",
    "problems",
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
    # How many samples the editor asks for: filtered pass@1 is headlined at it. Only the
    # summary depends on it, so a resume may change it.
    filter_n: int = DEFAULT_N

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data


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


def dedupe_records(
    records: Iterable[dict[str, Any]], wanted: set[tuple[str, int]]
) -> dict[tuple[str, int], dict[str, Any]]:
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


def load_run(path: Path) -> tuple[dict[str, Any], list[SampleRecord], list[dict[str, Any]]]:
    """Summary, samples and verdicts of a finished run directory (for reports)."""
    summary_path = path / SUMMARY_FILE
    if not summary_path.is_file():
        raise RunError(
            f"{path} has no {SUMMARY_FILE}: finish it with `docomplete eval run --out {path}` "
            "(same settings) or `docomplete eval score`"
        )
    summary = json.loads(summary_path.read_text())
    refuse_infill_run(path, summary)
    samples = [SampleRecord.from_json(r) for r in read_appended_records(path / SAMPLES_FILE)]
    results = read_appended_records(path / RESULTS_FILE)
    return summary, samples, results


def refuse_infill_run(path: Path, summary: Any) -> None:
    """Reports and comparisons read ``eval run`` directories; an ``eval infill`` one has other
    files (one sample per masked line), so it gets a clear refusal rather than a traceback."""
    if isinstance(summary, dict) and summary.get("kind") == "infill":
        raise RunError(
            f"{path} is an `eval infill` run: its figures are in {path / SUMMARY_FILE} and "
            f"{path / PER_PROBLEM_FILE}; eval report and eval compare read `eval run` directories"
        )
