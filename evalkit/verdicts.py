"""Verdicts for samples: hidden tests in the sandbox, then the docstring examples the LSP checks."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.data import Problem
from evalkit.run_dir import SampleRecord


@dataclass(frozen=True, kw_only=True)
class ExecutionSettings:
    """How samples are checked: sandbox limits and parallelism (workers do not change verdicts)."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    workers: int | None = None
    doctest_timeout_s: float = 1.0


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
