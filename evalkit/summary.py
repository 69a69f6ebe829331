"""The summary of a run: pass@k, filtered pass@1, ranking curves, per-problem table, printout.

Every figure is a mean over the problems that have verdicts; ``coverage`` says how many of the
dataset's problems that is (``eval score --allow-partial``, ``eval run --limit``), and reports
print it next to every figure.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.candidate_policy import DEFAULT_N
from evalkit.coverage import coverage, denominator
from evalkit.data import Problem
from evalkit.passk import mean_pass_at_k, pass_at_k, reportable_ks
from evalkit.ranking import (
    ScoredSample,
    filter_ns,
    filtered_curve,
    filtered_pass_at_1,
    ranking_curves,
)
from evalkit.run_dir import PER_PROBLEM_FILE, SUMMARY_FILE, SampleRecord, write_json_atomic


def summarize(
    problems: Sequence[Problem],
    samples: Sequence[SampleRecord],
    results: Sequence[dict[str, Any]],
    *,
    config: dict[str, Any],
    dataset_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """pass@k, filtered pass@1, ranking curves, status counts and the per-problem table.

    ``dataset_ids`` are the task ids of the whole dataset (default: those of ``problems``):
    coverage is reported against them. Filtered pass@1 is taken at
    ``config["filter_n"]`` (default: the editor's n), with its curve over n beside it.
    """
    # Imported here: evalkit.sandbox installs exit hooks, which a report on a finished run
    # has no use for.
    from evalkit.sandbox import STATUSES

    verdicts = {(str(r["task_id"]), int(r["sample_idx"])): r for r in results}
    scored: dict[str, list[ScoredSample]] = {problem.task_id: [] for problem in problems}
    status_counts: Counter[str] = Counter({status: 0 for status in STATUSES})
    per_problem_status: dict[str, Counter[str]] = {p.task_id: Counter() for p in problems}
    examples_total: dict[str, int] = {}
    shown_counts: Counter[str] = Counter({"kept": 0, "rewritten": 0, "dropped": 0})
    for sample in sorted(samples, key=lambda s: s.key):
        verdict = verdicts.get(sample.key)
        if verdict is None or sample.task_id not in scored:
            continue
        status_counts[verdict["status"]] += 1
        per_problem_status[sample.task_id][verdict["status"]] += 1
        examples_total[sample.task_id] = int(verdict.get("examples_total") or 0)
        # Verdicts written before the candidate policy was applied lack "shown": their own
        # verdict and compile check stand in for the shown body's.
        kept = bool(verdict.get("shown", verdict.get("compiles", True)))
        shown_passed = verdict.get("shown_passed")
        shown_counts["dropped" if not kept else "kept"] += 1
        shown_counts["rewritten"] += verdict.get("shown_completion") is not None
        scored[sample.task_id].append(
            ScoredSample(
                passed=bool(verdict["passed"]),
                sum_logprob=sample.sum_logprob if sample.sum_logprob is not None else 0.0,
                mean_logprob=sample.mean_logprob,
                examples_passed=int(verdict.get("examples_passed") or 0),
                compiles=kept,
                shown_passed=None if shown_passed is None else bool(shown_passed),
            )
        )
    per_problem_samples = [scored[p.task_id] for p in problems if scored[p.task_id]]
    counts = [(len(s), sum(x.passed for x in s)) for s in per_problem_samples]
    ks = reportable_ks([n for n, _ in counts])
    summary: dict[str, Any] = {}
    for k in ks:
        summary[f"pass@{k}"] = mean_pass_at_k(counts, k)
    filter_n = int(config.get("filter_n") or DEFAULT_N)
    summary["filtered_pass@1"] = filtered_pass_at_1(per_problem_samples, filter_n)
    smallest = min((n for n, _ in counts), default=0)
    summary["filter_n"] = filter_n
    summary["filtered_at_n"] = min(filter_n, smallest)
    curve_ns = sorted({*filter_ns(smallest), min(filter_n, smallest)} - {0})
    summary["filtered_pass@1_curve"] = {
        str(n): value for n, value in filtered_curve(per_problem_samples, curve_ns).items()
    }
    sizes = sorted({n for n, _ in counts})
    summary["n"] = sizes[0] if len(sizes) == 1 else (min(sizes) if sizes else 0)
    summary["temperature"] = config.get("temperature")
    summary["top_p"] = config.get("top_p")
    summary["max_tokens"] = config.get("max_tokens")
    summary["seed"] = config.get("seed")
    summary["problems"] = len(counts)
    summary["problems_expected"] = len(problems)
    summary["coverage"] = coverage(
        [p.task_id for p in problems if scored[p.task_id]],
        dataset_ids if dataset_ids is not None else [p.task_id for p in problems],
    )
    summary["samples"] = sum(n for n, _ in counts)
    summary["solved_problems"] = sum(1 for _, c in counts if c > 0)
    summary["problems_with_examples"] = sum(1 for t in examples_total.values() if t > 0)
    summary["status_counts"] = dict(status_counts)
    summary["shown_counts"] = dict(shown_counts)
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
        row["filtered_pick_pass"] = filtered_pass_at_1([task_samples], filter_n)
        row["examples_total"] = examples_total.get(problem.task_id, 0)
        row["status_counts"] = dict(per_problem_status[problem.task_id])
        table.append(row)
    summary["per_problem"] = table
    return summary


def summary_text(summary: dict[str, Any], out: Path) -> str:
    """What ``eval run`` / ``eval score`` print: the figures, what they are over, the curve."""
    metrics = [key for key in summary if key.startswith("pass@")]
    parts = [f"{key} {summary[key]:.2%}" for key in metrics]
    temperature = summary["temperature"]
    at = f" at T={temperature}" if temperature is not None else ""
    lines = [f"{summary['problems']} problems × n={summary['n']}{at}: " + ", ".join(parts)]
    lines.append(f"scores are {denominator(summary)}")
    lines.append(
        f"filtered pass@1 (best-ranked of n={summary.get('filtered_at_n', '?')} candidates, as "
        f"the editor shows it): {summary['filtered_pass@1']:.2%}"
    )
    curve = summary.get("filtered_pass@1_curve") or {}
    if curve:
        lines.append("  vs n: " + ", ".join(f"n={n} {value:.2%}" for n, value in curve.items()))
    counts = ", ".join(f"{k} {v}" for k, v in summary["status_counts"].items() if v)
    lines.append(f"verdicts: {counts}")
    lines.append(f"results in {out}/summary.json; plots: docomplete eval report {out}")
    return "\n".join(lines)


def write_summary(out_dir: Path, summary: dict[str, Any]) -> None:
    """``summary.json`` (without the table) and ``per_problem.jsonl``."""
    table = summary.get("per_problem", [])
    write_json_atomic(
        out_dir / SUMMARY_FILE, {k: v for k, v in summary.items() if k != "per_problem"}
    )
    tmp = out_dir / (PER_PROBLEM_FILE + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in table))
    os.replace(tmp, out_dir / PER_PROBLEM_FILE)
