"""``docomplete eval compare RUN_A RUN_B``: is one run really better, problem by problem?

Works on any two finished run or score directories (any backend): it reads their
``summary.json`` and ``per_problem.jsonl``, refuses pairs that were not measured on the same
problems, and tests pass@1, pass@k (every k both runs support) and filtered pass@1 with the
paired statistics of :mod:`evalkit.stats`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.passk import DEFAULT_KS, pass_at_k
from evalkit.run_dir import RunError, refuse_infill_run
from evalkit.stats import PairedComparison, compare_paired, format_p

SUMMARY_FILE = "summary.json"
PER_PROBLEM_FILE = "per_problem.jsonl"


class CompareError(ValueError):
    """Two runs cannot be compared; ``str(error)`` is one line naming the fix."""


@dataclass(frozen=True)
class RunTable:
    """What a comparison needs from a run: its identity and per-problem ``(n, correct, pick)``."""

    path: Path
    summary: dict[str, Any]
    rows: dict[str, dict[str, Any]]

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.summary.get("config") or {})

    def describe(self) -> str:
        temperature = self.summary.get("temperature")
        at = f", T={temperature}" if temperature is not None else ""
        return f"{self.path} (n={self.summary.get('n')}{at}, {len(self.rows)} problems)"


def load_run_table(path: Path) -> RunTable:
    """Read a finished run directory's summary and per-problem rows."""
    summary_path, rows_path = path / SUMMARY_FILE, path / PER_PROBLEM_FILE
    if not summary_path.is_file() or not rows_path.is_file():
        raise CompareError(
            f"{path} is not a finished run (no {SUMMARY_FILE} / {PER_PROBLEM_FILE}): finish it "
            f"with `docomplete eval run --out {path}` (same settings) or `docomplete eval score`"
        )
    try:
        summary = json.loads(summary_path.read_text())
        refuse_infill_run(path, summary)
        rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
        table = {str(row["task_id"]): row for row in rows}
        for row in rows:
            int(row["n"]), int(row["correct"])
    except RunError as exc:
        raise CompareError(str(exc)) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CompareError(
            f"{path}: damaged run files ({exc}); rerun `eval run` to rewrite them"
        ) from None
    if not table:
        raise CompareError(f"{path} holds no scored problems")
    return RunTable(path=path, summary=summary, rows=table)


def check_comparable(a: RunTable, b: RunTable) -> list[str]:
    """The shared problems in A's order; :class:`CompareError` when the runs do not match."""
    dataset_a, dataset_b = a.config.get("dataset"), b.config.get("dataset")
    sha_a, sha_b = a.config.get("dataset_sha256"), b.config.get("dataset_sha256")
    if (sha_a and sha_b and sha_a != sha_b) or (not (sha_a and sha_b) and dataset_a != dataset_b):
        raise CompareError(
            f"the runs use different datasets ({dataset_a} vs {dataset_b}); compare runs made "
            "on the same --dataset"
        )
    only_a = sorted(set(a.rows) - set(b.rows))
    only_b = sorted(set(b.rows) - set(a.rows))
    if only_a or only_b:
        sample = ", ".join((only_a + only_b)[:3])
        raise CompareError(
            f"the runs cover different problems ({len(only_a)} only in A, {len(only_b)} only in "
            f"B, e.g. {sample}); rerun one with the other's --limit so both score the same set"
        )
    return list(a.rows)


def metric_values(table: RunTable, task_ids: Sequence[str], metric: str) -> list[float]:
    """Per-problem scores for ``pass@k`` (unbiased estimate) or ``filtered_pass@1``."""
    values = []
    for task_id in task_ids:
        row = table.rows[task_id]
        if metric == "filtered_pass@1":
            values.append(float(row.get("filtered_pick_pass") or 0.0))
        else:
            k = int(metric.removeprefix("pass@"))
            values.append(pass_at_k(int(row["n"]), int(row["correct"]), k))
    return values


def shared_metrics(a: RunTable, b: RunTable, task_ids: Sequence[str]) -> list[str]:
    """pass@k for each default k every problem of both runs supports, then filtered pass@1."""
    smallest = min(int(t.rows[task]["n"]) for t in (a, b) for task in task_ids)
    return [f"pass@{k}" for k in DEFAULT_KS if k <= smallest] + ["filtered_pass@1"]


def compare_runs(
    path_a: Path, path_b: Path, *, alpha: float, resamples: int, seed: int
) -> dict[str, Any]:
    """Every shared metric of B against A, as plain JSON."""
    a, b = load_run_table(path_a), load_run_table(path_b)
    task_ids = check_comparable(a, b)
    results: list[PairedComparison] = []
    for offset, metric in enumerate(shared_metrics(a, b, task_ids)):
        results.append(
            compare_paired(
                metric_values(a, task_ids, metric),
                metric_values(b, task_ids, metric),
                metric=metric,
                alpha=alpha,
                resamples=resamples,
                seed=seed + 2 * offset,
            )
        )
    return {
        "a": {"path": str(path_a), "description": a.describe(), "config": a.config},
        "b": {"path": str(path_b), "description": b.describe(), "config": b.config},
        "problems": len(task_ids),
        "alpha": alpha,
        "resamples": resamples,
        "seed": seed,
        "test": "paired sign-flip permutation test (two-sided) over problems",
        "interval": "percentile bootstrap over problems",
        "metrics": [result.to_json() for result in results],
    }


def _pp(value: float) -> str:
    return f"{100 * value:+.1f}"


def format_comparison(payload: dict[str, Any]) -> str:
    """The table and verdicts printed by ``eval compare``."""
    confidence = round(100 * (1 - payload["alpha"]))
    lines = [
        f"A = {payload['a']['description']}",
        f"B = {payload['b']['description']}",
        f"{payload['problems']} problems, paired; {payload['resamples']} bootstrap resamples, "
        f"seed {payload['seed']}",
        "",
        f"{'metric':<16}{'A':>8}{'B':>8}{'B − A':>9}  {f'{confidence}% CI (pp)':<18}"
        f"{'p':>7}  verdict",
    ]
    for row in payload["metrics"]:
        interval = f"[{_pp(row['ci_low'])}, {_pp(row['ci_high'])}]"
        lines.append(
            f"{row['metric']:<16}{100 * row['mean_a']:>7.1f}%{100 * row['mean_b']:>7.1f}%"
            f"{_pp(row['difference']):>7} pp  {interval:<18}{format_p(row['p_value']):>7}  "
            f"{row['verdict']}"
        )
    lines.append("")
    for row in payload["metrics"]:
        needed = row["problems_needed"]
        if needed is None:
            text = "no difference observed, nothing to detect"
        else:
            text = f"~{needed} problems to detect a {_pp(row['difference'])} pp difference"
            text += " (this comparison has enough)" if needed <= row["problems"] else ""
        lines.append(f"{row['metric']}: {text} (80% power, α = {row['alpha']:g})")
    return "\n".join(lines)
