"""``docomplete eval report``: markdown + JSON + PNG plots for one or more run directories.

Plots: pass@k per run; ranking curves (Codex Fig. 7: which of k samples to show); BLEU against
the canonical solution for passed vs failed samples (Codex Fig. 8). Tables include pass rates by
docstring length. matplotlib (Agg) and
sacrebleu are imported lazily.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.coverage import denominator
from evalkit.data import DatasetError, load_dataset
from evalkit.ranking import STRATEGIES
from evalkit.runner import RunError, SampleRecord, load_run


@dataclass
class _RunView:
    name: str
    path: Path
    summary: dict[str, Any]
    per_problem: list[dict[str, Any]]
    bleu_passed: list[float]
    bleu_failed: list[float]
    by_length: list[dict[str, Any]]


def _load_view(path: Path, names_taken: set[str]) -> _RunView:
    from evalkit.bleu import sample_bleu_scores
    from evalkit.length_breakdown import length_breakdown

    summary, samples, results = load_run(path)
    config = summary.get("config", {})
    try:
        dataset = load_dataset(config.get("dataset", "humaneval"))
    except DatasetError as exc:
        raise RunError(f"{path}: its dataset cannot be loaded ({exc})") from None
    canonical = {p.task_id: p.canonical_solution for p in dataset.problems}
    verdicts = {(str(r["task_id"]), int(r["sample_idx"])): bool(r["passed"]) for r in results}
    judged: list[tuple[SampleRecord, bool]] = [
        (s, verdicts[s.key]) for s in samples if s.key in verdicts and s.task_id in canonical
    ]
    scores = sample_bleu_scores((s.completion, canonical[s.task_id]) for s, _ in judged)
    per_problem_path = path / "per_problem.jsonl"
    per_problem = (
        [json.loads(line) for line in per_problem_path.read_text().splitlines() if line.strip()]
        if per_problem_path.is_file()
        else []
    )
    name = path.resolve().name
    while name in names_taken:
        name = f"{path.resolve().parent.name}/{name}"
    names_taken.add(name)
    return _RunView(
        name=name,
        path=path,
        summary=summary,
        per_problem=per_problem,
        bleu_passed=[b for b, (_, ok) in zip(scores, judged, strict=True) if ok],
        bleu_failed=[b for b, (_, ok) in zip(scores, judged, strict=True) if not ok],
        by_length=length_breakdown(dataset.problems, per_problem),
    )


def _pass_keys(summary: dict[str, Any]) -> list[str]:
    return [k for k in ("pass@1", "pass@10", "pass@100") if k in summary]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def _bleu_stats(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "count": len(values),
        "mean": statistics.fmean(values) if values else None,
        "median": statistics.median(values) if values else None,
    }


def _plot_pass_at_k(views: Sequence[_RunView], path: Path) -> None:
    import matplotlib.pyplot as plt

    metrics = ["pass@1", "filtered_pass@1", "pass@10", "pass@100"]
    metrics = [m for m in metrics if any(m in v.summary for v in views)]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(metrics) * max(1, len(views)) / 2), 4))
    width = 0.8 / max(1, len(views))
    for i, view in enumerate(views):
        xs = [j + i * width for j in range(len(metrics))]
        values = [100 * view.summary.get(m, 0.0) for m in metrics]
        bars = ax.bar(xs, values, width=width, label=f"{view.name}, {denominator(view.summary)}")
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks([j + width * (len(views) - 1) / 2 for j in range(len(metrics))], metrics)
    ax.set_ylabel("% of problems")
    ax.set_title("pass@k (unbiased estimator) and filtered pass@1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_ranking(views: Sequence[_RunView], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(views), figsize=(5.5 * len(views), 4), squeeze=False)
    for ax, view in zip(axes[0], views, strict=True):
        curves = view.summary.get("ranking", {})
        for strategy, label in STRATEGIES.items():
            curve = curves.get(strategy, {})
            if not curve:
                continue
            ks = sorted(int(k) for k in curve)
            style = "--" if strategy in ("random", "oracle") else "-"
            ax.plot(ks, [100 * curve[str(k)] for k in ks], style, marker=".", label=label)
        ax.set_xscale("log")
        all_ks = sorted({int(k) for curve in curves.values() for k in curve})
        if all_ks:
            ax.set_xticks(all_ks, [str(k) for k in all_ks], fontsize=7)
            ax.minorticks_off()
        ax.set_xlabel("k (samples to choose from)")
        ax.set_ylabel("pass rate of the chosen sample (%)")
        ax.set_title(f"{view.name}: picking 1 of k", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_bleu(views: Sequence[_RunView], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(views), figsize=(5.5 * len(views), 4), squeeze=False)
    bins = [i * 5 for i in range(21)]
    for ax, view in zip(axes[0], views, strict=True):
        if view.bleu_failed:
            ax.hist(view.bleu_failed, bins=bins, density=True, alpha=0.55, label="failed")
        if view.bleu_passed:
            ax.hist(view.bleu_passed, bins=bins, density=True, alpha=0.55, label="passed")
        ax.set_xlabel("sentence BLEU vs canonical solution")
        ax.set_ylabel("density")
        ax.set_title(f"{view.name}: BLEU of passed vs failed samples", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _markdown(views: Sequence[_RunView]) -> str:
    lines = ["# HumanEval report", ""]
    keys = ["pass@1", "pass@10", "pass@100"]
    lines.append(
        "**filtered pass@1** is the pass rate of the one candidate the editor shows: of the "
        "editor's n samples (n in brackets; `docomplete.n`, default 4), post-processed and "
        "ranked by the LSP's candidate policy (code that does not compile dropped, then "
        "docstring examples passed, then mean token log-prob), the top one, judged by the "
        "hidden tests; exact expectation over all n-subsets of a problem's samples."
    )
    lines.append("")
    statuses = ("passed", "failed", "timeout", "memory", "crashed", "output_limit")
    header = ["run", "problems", "n", "T", "**filtered pass@1**", *keys, *statuses]
    scope = [f"{view.name}: scores are {denominator(view.summary)}" for view in views]
    lines += [f"*{line}*" for line in scope] + [""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|---" * len(header) + "|")
    for view in views:
        s = view.summary
        counts = s.get("status_counts", {})
        lines.append(
            f"| {view.name} | {_problems_cell(s)} | {s.get('n')} | {s.get('temperature')} | "
            f"**{_pct(s.get('filtered_pass@1'))}** ({_filter_n_cell(s)}) | "
            + " | ".join(_pct(s.get(k)) for k in keys)
            + " | "
            + " | ".join(str(counts.get(status, 0)) for status in statuses)
            + " |"
        )
    lines += ["", "![pass@k](pass_at_k.png)", ""]
    lines += _filtered_curve_table(views)
    lines += ["## Which sample to show (Codex Fig. 7)", ""]
    for view in views:
        curves = view.summary.get("ranking", {})
        ks = sorted({int(k) for curve in curves.values() for k in curve})
        if not ks:
            continue
        lines.append(f"### {view.name}")
        lines.append("")
        lines.append("| heuristic | " + " | ".join(f"k={k}" for k in ks) + " |")
        lines.append("|---" * (len(ks) + 1) + "|")
        for strategy, label in STRATEGIES.items():
            curve = curves.get(strategy, {})
            lines.append(f"| {label} | " + " | ".join(_pct(curve.get(str(k))) for k in ks) + " |")
        lines.append("")
    lines += ["![ranking curves](ranking.png)", "", "## BLEU vs correctness (Codex Fig. 8)", ""]
    lines.append("| run | passed: samples | mean BLEU | failed: samples | mean BLEU |")
    lines.append("|---|---|---|---|---|")
    for view in views:
        good, bad = _bleu_stats(view.bleu_passed), _bleu_stats(view.bleu_failed)
        lines.append(
            f"| {view.name} | {good['count']} | {_fmt(good['mean'])} | "
            f"{bad['count']} | {_fmt(bad['mean'])} |"
        )
    lines += ["", "![BLEU](bleu.png)", ""]
    lines += _length_section(views)
    lines += ["## Per problem", ""]
    for view in views:
        lines.append(f"<details><summary>{view.name}</summary>")
        lines.append("")
        pass_keys = _pass_keys(view.summary)
        lines.append(
            "| task | n | correct | " + " | ".join(pass_keys) + " | filtered pick | examples |"
        )
        lines.append("|---" * (5 + len(pass_keys)) + "|")
        for row in view.per_problem:
            lines.append(
                f"| {row['task_id']} | {row['n']} | {row['correct']} | "
                + " | ".join(_pct(row.get(k)) for k in pass_keys)
                + f" | {_pct(row.get('filtered_pick_pass'))} | {row.get('examples_total', 0)} |"
            )
        lines += ["", "</details>", ""]
    return "\n".join(lines) + "\n"


def _problems_cell(summary: dict[str, Any]) -> str:
    coverage = summary.get("coverage") or {}
    if coverage and not coverage.get("complete", True):
        return f"{coverage['attempted']} of {coverage['dataset_problems']}"
    return str(summary.get("problems"))


def _filter_n_cell(summary: dict[str, Any]) -> str:
    # Runs summarised before the policy was shared ranked all n samples.
    return f"n={summary.get('filtered_at_n', summary.get('n'))}"


def _filtered_curve_table(views: Sequence[_RunView]) -> list[str]:
    """Filtered pass@1 against the number of candidates the editor asks for."""
    curves = {view.name: view.summary.get("filtered_pass@1_curve") or {} for view in views}
    ns = sorted({int(n) for curve in curves.values() for n in curve})
    if not ns:
        return []
    lines = ["## Filtered pass@1 vs the editor's n", ""]
    lines.append("| run | " + " | ".join(f"n={n}" for n in ns) + " |")
    lines.append("|---" * (len(ns) + 1) + "|")
    for name, curve in curves.items():
        lines.append(f"| {name} | " + " | ".join(_pct(curve.get(str(n))) for n in ns) + " |")
    return [*lines, ""]


def _length_section(views: Sequence[_RunView]) -> list[str]:
    """Pass rates by docstring length (tokens = words and punctuation marks)."""
    lines = ["## Pass rate by docstring length (tokens)", ""]
    for view in views:
        keys = [k for k in ("pass@1", "pass@10", "pass@100") if any(k in r for r in view.by_length)]
        lines.append(f"### {view.name}")
        lines.append("")
        lines.append(
            "| tokens | problems | mean tokens | " + " | ".join(keys) + " | filtered pass@1 |"
        )
        lines.append("|---" * (4 + len(keys)) + "|")
        for row in view.by_length:
            lines.append(
                f"| {row['bucket']} | {row['problems']} | {row['mean_tokens']:.0f} | "
                + " | ".join(_pct(row.get(k)) for k in keys)
                + f" | {_pct(row['filtered_pass@1'])} |"
            )
        lines.append("")
    return lines


def _fmt(value: float | int | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def write_report(runs: Sequence[Path], out: Path) -> list[Path]:
    """Write ``report.md``, ``report.json`` and three PNGs into ``out``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    names: set[str] = set()
    views = [_load_view(Path(run), names) for run in runs]
    out.mkdir(parents=True, exist_ok=True)
    pass_png, ranking_png, bleu_png = (
        out / "pass_at_k.png",
        out / "ranking.png",
        out / "bleu.png",
    )
    _plot_pass_at_k(views, pass_png)
    _plot_ranking(views, ranking_png)
    _plot_bleu(views, bleu_png)
    payload = {
        "runs": [
            {
                "name": view.name,
                "path": str(view.path),
                "denominator": denominator(view.summary),
                "summary": view.summary,
                "bleu": {
                    "passed": _bleu_stats(view.bleu_passed),
                    "failed": _bleu_stats(view.bleu_failed),
                },
                "by_docstring_length": view.by_length,
            }
            for view in views
        ]
    }
    json_path, md_path = out / "report.json", out / "report.md"
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    md_path.write_text(_markdown(views))
    return [md_path, json_path, pass_png, ranking_png, bleu_png]
