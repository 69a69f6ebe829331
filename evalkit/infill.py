"""Single-line infilling tasks (Bavarian et al. 2022) from HumanEval: build, prompt, judge, sum up.

Every non-blank line of a problem's canonical solution is masked in turn: the model gets the
prompt and the lines above as the prefix, the lines below as the suffix, and writes the masked
line, indentation included. The first line of its answer goes back in place and the problem's
hidden tests decide (the paper's pass rate). HumanEval's 164 problems give 1,033 tasks, the
paper's count. The resumable run around these pieces is ``evalkit.infill_run``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.coverage import coverage
from evalkit.data import Dataset, Problem
from evalkit.passk import pass_at_k, reportable_ks
from model.fim import FimTemplate, build_fim_prompt

if TYPE_CHECKING:
    from evalkit.sandbox import ExecutionResult

#: What ends an answer: only its first line is kept, so nothing past the newline is needed.
LINE_STOP = "\n"


class InfillError(ValueError):
    """A selection or look-alike list cannot be used; ``str(error)`` names the fix."""


@dataclass(frozen=True)
class InfillTask:
    """One masked line: ``prefix + middle + suffix`` is the problem's reference program.

    ``suffix`` starts with the newline that ended the masked line, so an answer's first line
    goes in its place unchanged.
    """

    task_id: str  # "HumanEval/0/L3": the problem, then the masked line's number in the solution
    problem: Problem
    line_number: int  # 1-based, within the canonical solution
    prefix: str
    middle: str
    suffix: str

    def program(self, line: str) -> str:
        """The problem's program with ``line`` where the masked line was."""
        return self.prefix + line + self.suffix


def build_tasks(problems: Iterable[Problem]) -> list[InfillTask]:
    """One task per non-blank line of each canonical solution, in problem then line order."""
    tasks = []
    for problem in problems:
        lines = problem.canonical_solution.splitlines(keepends=True)
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            text = line.rstrip("\r\n")
            tasks.append(
                InfillTask(
                    task_id=f"{problem.task_id}/L{index + 1}",
                    problem=problem,
                    line_number=index + 1,
                    prefix=problem.prompt + "".join(lines[:index]),
                    middle=text,
                    suffix=line[len(text) :] + "".join(lines[index + 1 :]),
                )
            )
    return tasks


def problem_of(task_id: str) -> str:
    """``HumanEval/0/L3`` → ``HumanEval/0``."""
    return task_id.rsplit("/", 1)[0]


def first_line(answer: str) -> str:
    """What goes into the hole: the answer up to its first newline."""
    return answer.split("\n", 1)[0].rstrip("\r")


@dataclass(frozen=True)
class Prompting:
    """How the hole is asked for: a FIM template's prompt, or the prefix alone (left to right)."""

    template: FimTemplate | None

    @property
    def mode(self) -> str:
        return "prefix-only" if self.template is None else "fim"

    @property
    def template_id(self) -> str | None:
        """What the run's config records: the template's name, or a custom one's layout."""
        if self.template is None:
            return None
        return self.template.layout if self.template.name == "custom" else self.template.name

    @property
    def stop(self) -> tuple[str, ...]:
        extra = self.template.stop_sequences if self.template is not None else ()
        return tuple(dict.fromkeys([LINE_STOP, *extra]))

    def prompt(self, task: InfillTask) -> str:
        if self.template is None:
            return task.prefix
        return build_fim_prompt(task.prefix, task.suffix, self.template)

    def describe(self) -> str:
        if self.template is None:
            return "prefix only (left to right; the model never sees the code below the hole)"
        return f"fill-in-the-middle, {self.template_id} template"


def check_lines(
    answers: Sequence[tuple[InfillTask, str]],
    *,
    timeout_s: float,
    memory_mb: int,
    workers: int | None = None,
) -> list[ExecutionResult]:
    """Run each task's hidden tests on its program with the given line, in the sandbox."""
    from evalkit import sandbox

    pairs = [(task.program(line), task.problem.test_program()) for task, line in answers]

    def check(batch: list[tuple[str, str]]) -> list[ExecutionResult]:
        return sandbox.check_many(batch, workers=workers, timeout_s=timeout_s, memory_mb=memory_mb)

    verdicts = check(pairs)
    # A sandbox lost under load also reads "crashed": one rerun tells it from a real crash.
    crashed = [i for i, verdict in enumerate(verdicts) if verdict.status == "crashed"]
    if crashed:
        for i, verdict in zip(crashed, check([pairs[i] for i in crashed]), strict=True):
            verdicts[i] = verdict
    return verdicts


# ----------------------------------------------------------------------------------------------
# Choosing problems and the look-alike split


def _problem_id(token: str, dataset: Dataset) -> str:
    token = token.strip()
    if token.isdigit() and dataset.name == "humaneval":
        return f"HumanEval/{int(token)}"
    return token


def select_problems(
    dataset: Dataset, problems: str | None = None, limit: int | None = None
) -> list[Problem]:
    """``--problems`` (comma-separated ids, or HumanEval numbers) in dataset order, then the
    first ``limit`` of them."""
    chosen = list(dataset.problems)
    if problems:
        wanted = {_problem_id(token, dataset) for token in problems.split(",") if token.strip()}
        unknown = sorted(wanted - {problem.task_id for problem in chosen})
        if unknown:
            raise InfillError(
                f"--problems names {', '.join(unknown[:5])}, not in dataset {dataset.name}; "
                "give task ids (HumanEval/12) or HumanEval numbers (12)"
            )
        chosen = [problem for problem in chosen if problem.task_id in wanted]
    return chosen[:limit] if limit else chosen


def read_look_alikes(spec: str, dataset: Dataset) -> set[str]:
    """Problem ids from a ``train decontam-report`` JSON (rows flagged ``look_alike``), a JSON
    list of ids, or a comma-separated list of ids or HumanEval numbers."""
    path = Path(spec).expanduser()
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InfillError(f"--look-alikes {path}: not readable JSON ({exc})") from None
        from evalkit.split import report_look_alikes

        report_ids = report_look_alikes(data)
        if report_ids is not None:
            ids = report_ids
        elif isinstance(data, list):
            ids = [str(item) for item in data]
        else:
            raise InfillError(
                f"--look-alikes {path}: expected a `docomplete train decontam-report` JSON "
                "or a JSON list of problem ids"
            )
    else:
        ids = [_problem_id(token, dataset) for token in spec.split(",") if token.strip()]
    known = {problem.task_id for problem in dataset.problems}
    # A decontamination report covers several eval sets: keep this dataset's problems.
    found = {task_id for task_id in ids if task_id in known}
    if not found and not path.is_file():
        raise InfillError(
            f"--look-alikes {spec!r} names no problem of dataset {dataset.name}; give a "
            "decontam-report JSON, or ids / HumanEval numbers separated by commas"
        )
    return found


# ----------------------------------------------------------------------------------------------
# The figures


@dataclass
class _Tally:
    n: int = 0
    correct: int = 0
    exact: int = 0


@dataclass
class _Group:
    problems: set[str] = field(default_factory=set)
    tallies: list[_Tally] = field(default_factory=list)

    def figures(self, ks: Sequence[int]) -> dict[str, Any]:
        out: dict[str, Any] = {"problems": len(self.problems), "tasks": len(self.tallies)}
        if not self.tallies:
            return out
        for k in ks:
            values = [pass_at_k(t.n, t.correct, k) for t in self.tallies]
            out[f"pass@{k}"] = sum(values) / len(values)
        out["exact_match"] = sum(t.exact / t.n for t in self.tallies) / len(self.tallies)
        return out


def infill_summary(
    tasks: Sequence[InfillTask],
    results: Iterable[dict[str, Any]],
    *,
    config: dict[str, Any],
    dataset_ids: Sequence[str],
    dataset_tasks: int,
    look_alikes: set[str] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The summary, the per-problem rows and the per-task rows of a run.

    pass@k is a mean over tasks (the paper's pass rate at k = 1); ``problem_mean_pass@1``
    weighs every problem equally instead. ``splits`` holds look-alike problems against the rest
    when a look-alike list is given.
    """
    tallies = {task.task_id: _Tally() for task in tasks}
    status_counts: Counter[str] = Counter()
    for record in results:
        tally = tallies.get(str(record["task_id"]))
        if tally is None:
            continue
        tally.n += 1
        tally.correct += bool(record["passed"])
        tally.exact += bool(record.get("exact_match"))
        status_counts[str(record["status"])] += 1
    judged = [task for task in tasks if tallies[task.task_id].n]
    ks = reportable_ks([tallies[task.task_id].n for task in judged])
    overall = _Group()
    by_problem: dict[str, _Group] = {}
    splits = {"look_alike": _Group(), "rest": _Group()}
    task_rows = []
    for task in judged:
        tally, pid = tallies[task.task_id], task.problem.task_id
        groups = [overall, by_problem.setdefault(pid, _Group())]
        if look_alikes is not None:
            groups.append(splits["look_alike" if pid in look_alikes else "rest"])
        for group in groups:
            group.problems.add(pid)
            group.tallies.append(tally)
        task_rows.append(
            {
                "task_id": task.task_id,
                "problem": pid,
                "line": task.line_number,
                "middle": task.middle,
                "n": tally.n,
                "correct": tally.correct,
                "exact": tally.exact,
                "pass@1": tally.correct / tally.n,
            }
        )
    problem_rows = [{"task_id": pid, **group.figures(ks[:1])} for pid, group in by_problem.items()]
    summary: dict[str, Any] = {
        "kind": "infill",
        "prompting": config.get("prompting"),
        "fim_template": config.get("fim_template"),
        "n": min((t.n for t in tallies.values() if t.n), default=0),
        "temperature": config.get("temperature"),
        "ks": ks,
        **overall.figures(ks),
        "tasks_in_dataset": dataset_tasks,
        "status_counts": dict(sorted(status_counts.items())),
        "coverage": coverage(sorted(overall.problems), dataset_ids),
    }
    if problem_rows:
        summary["problem_mean_pass@1"] = sum(r["pass@1"] for r in problem_rows) / len(problem_rows)
        summary["pass@1_ci"] = problem_bootstrap_ci(
            [(r["pass@1"] * r["tasks"], r["tasks"]) for r in problem_rows]
        )
    if look_alikes is not None:
        summary["splits"] = {name: group.figures(ks) for name, group in splits.items()}
        summary["look_alikes"] = sorted(look_alikes)
    summary["config"] = config
    return summary, problem_rows, task_rows


def problem_bootstrap_ci(
    per_problem: Sequence[tuple[float, int]], *, resamples: int = 2_000, seed: int = 0
) -> list[float]:
    """95 % interval of the task-mean pass@1, resampling *problems* (``(passed tasks, tasks)``
    each): the lines of one problem share its prompt and its tests, so they are not
    independent draws, and an interval over tasks would be too narrow."""
    import numpy as np

    passed = np.asarray([p for p, _ in per_problem], dtype=float)
    counts = np.asarray([c for _, c in per_problem], dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(passed), (resamples, len(passed)))
    means = passed[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return [float(low), float(high)]


def _interval(ci: Any) -> str:
    if not ci:
        return ""
    return f" (95% CI over problems {100 * ci[0]:.1f}–{100 * ci[1]:.1f}%)"


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, float) else "-"


def format_infill(summary: dict[str, Any]) -> str:
    """What ``eval infill`` prints: the pass rate, its denominator and the split."""
    config = summary.get("config") or {}
    template = summary.get("fim_template")
    how = (
        f"fill-in-the-middle ({template} template)"
        if summary.get("prompting") == "fim"
        else "PREFIX-ONLY prompting (no suffix shown to the model)"
    )
    scope = summary["coverage"]["denominator"]
    if not summary["coverage"]["complete"]:
        chosen = [f"--problems: {len(config['problems'])}"] if config.get("problems") else []
        chosen += [f"--limit {config['limit']}"] if config.get("limit") else []
        scope += f" ({', '.join(chosen)})" if chosen else ""
    lines = [
        f"single-line infilling: {summary.get('tasks', 0)} tasks of {summary['tasks_in_dataset']}"
        f", {scope}; {how}; n={summary['n']}, T={summary.get('temperature')}",
        "  "
        + "  ".join(f"pass@{k} {_percent(summary.get(f'pass@{k}'))}" for k in summary["ks"])
        + _interval(summary.get("pass@1_ci"))
        + f"  exact match {_percent(summary.get('exact_match'))}"
        + f"  (mean over problems: pass@1 {_percent(summary.get('problem_mean_pass@1'))})",
    ]
    for name, group in (summary.get("splits") or {}).items():
        label = "look-alike problems" if name == "look_alike" else "other problems"
        lines.append(
            f"  {label}: {group['problems']} problems, {group['tasks']} tasks, "
            f"pass@1 {_percent(group.get('pass@1'))}"
        )
    statuses = ", ".join(f"{k} {v}" for k, v in summary["status_counts"].items() if v)
    lines.append(f"  verdicts: {statuses}")
    return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class InfillConfig:
    """Every setting of an infilling run; written to ``config.json`` and checked on resume."""

    dataset: str
    dataset_sha256: str
    backend: str
    model: str | None
    prompting: str
    fim_template: str | None
    problems: list[str] | None
    limit: int | None
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int
    samples_per_call: int
    batch_prompts: int
    timeout_s: float
    memory_mb: int
    kind: str = "infill"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data
