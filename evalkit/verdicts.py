"""Verdicts for samples: hidden tests in the sandbox, then what the editor would show.

Besides its own verdict (what pass@k counts), every sample gets the verdict of the body the LSP
would show for it: the candidate policy (``evalkit.candidate_policy``) post-processes it at the
prompt's site, drops it when nothing compiling is left, and the body it keeps is judged by the
hidden tests (the sample's own verdict when it is the same code) and by the docstring examples,
which rank it. Filtered pass@1 is computed from these.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.candidate_policy import CleanCandidate, clean_candidate, syntax_checkable
from evalkit.data import Problem
from evalkit.prompt_site import PromptSite, site_for_prompt
from evalkit.run_dir import SampleRecord
from model.protocol import Candidate


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
    sites = {
        problem.task_id: site_for_prompt(problem.prompt, problem.entry_point)
        for problem, _ in groups
    }
    shown = [shown_candidate(sites[problem.task_id], sample) for problem, sample in flat]
    pairs = [
        (problem.program(sample.completion), problem.test_program()) for problem, sample in flat
    ]
    # A shown body that is not the sample's own code gets its own run of the hidden tests.
    rechecked = [
        (i, clean)
        for i, ((problem, sample), clean) in enumerate(zip(flat, shown, strict=True))
        if clean is not None and not _same_code(problem, sample.completion, clean.continuation)
    ]
    pairs += [
        (flat[i][0].program(clean.continuation + "\n"), flat[i][0].test_program())
        for i, clean in rechecked
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
    example_verdicts: list[tuple[int, int, str]] = []
    offset = 0
    for problem, samples in groups:
        example_verdicts += run_docstring_examples(
            problem,
            shown[offset : offset + len(samples)],
            settings.doctest_timeout_s,
            site=sites[problem.task_id],
        )
        offset += len(samples)
    shown_verdicts = dict(zip([i for i, _ in rechecked], verdicts[len(flat) :], strict=True))
    records = []
    for index, ((problem, sample), verdict, clean) in enumerate(
        zip(flat, verdicts[: len(flat)], shown, strict=True)
    ):
        examples_passed, examples_total, example_status = example_verdicts[index]
        shown_verdict = shown_verdicts.get(index, verdict)
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
                # What the editor would show for this sample, and whether that passes.
                "shown": clean is not None,
                "shown_passed": clean is not None and shown_verdict.status == "passed",
                "shown_completion": (
                    clean.continuation if clean is not None and index in shown_verdicts else None
                ),
            }
        )
    return records


def shown_candidate(site: PromptSite, sample: SampleRecord) -> CleanCandidate | None:
    """The body the LSP would show for ``sample`` (post-processed), or None when it drops it."""
    candidate = Candidate(
        sample.completion,
        tuple(sample.token_logprobs),
        "length" if sample.finish_reason == "length" else "stop",
    )
    return clean_candidate(site, candidate, check_syntax=syntax_checkable(site))


def _same_code(problem: Problem, completion: str, continuation: str) -> bool:
    """Whether the shown body is the sample's own program (post-processing mostly strips
    whitespace): then the sample's verdict is the shown body's, with no second run."""
    if (problem.prompt + completion).rstrip() == (problem.prompt + continuation).rstrip():
        return True
    try:
        ours = ast.parse(problem.prompt + completion)
        shown = ast.parse(problem.prompt + continuation)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return ast.dump(ours) == ast.dump(shown)


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


def run_docstring_examples(
    problem: Problem,
    shown: Sequence[CleanCandidate | None],
    timeout_s: float,
    *,
    site: PromptSite | None = None,
) -> list[tuple[int, int, str]]:
    """``(examples passed, examples total, status)`` per shown body, all in one sandboxed run.

    Exactly the LSP's filter: the entry point's ``>>>`` examples, run against each function the
    candidate policy kept, with the code above the function as prelude, checked by
    ``evalkit.doctest_runner`` with outputs compared outside the sandbox. A dropped sample
    (None) is shown nowhere: status ``dropped``.
    """
    from evalkit import doctest_runner

    site = site or site_for_prompt(problem.prompt, problem.entry_point)
    examples = doctest_runner.extract_examples(site.docstring or "")
    if not examples:
        return [(0, 0, "no_examples")] * len(shown)
    kept = [index for index, clean in enumerate(shown) if clean is not None]
    outcomes: list[tuple[int, int, str]] = [(0, len(examples), "dropped")] * len(shown)
    if not kept:
        return outcomes
    sources = [shown[index].source for index in kept]  # type: ignore[union-attr]
    prelude = site.module_context
    verdicts = doctest_runner.run_doctests(prelude, sources, examples, timeout_s=timeout_s)
    if any(v.status == "crashed" for v in verdicts):  # see execute_samples: retry once
        verdicts = doctest_runner.run_doctests(prelude, sources, examples, timeout_s=timeout_s)
    for index, verdict in zip(kept, verdicts, strict=True):
        outcomes[index] = (int(verdict.passed), int(verdict.total), str(verdict.status))
    return outcomes
