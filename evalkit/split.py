"""``docomplete eval split``: a run's figures for the look-alike problems and for the rest.

The look-alike list comes from ``docomplete train decontam-report`` (computed per problem from
the training data: nearest docstrings by text, and nearest bodies that pass the problem's tests),
so "how much of this score is recall of training tasks" is measured, not judged by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.run_dir import PER_PROBLEM_FILE, write_json_atomic
from model.cli_support import CommandError


def report_look_alikes(data: Any) -> list[str] | None:
    """The problem ids a parsed ``train decontam-report`` JSON flags (every eval set), or None
    when ``data`` is not such a report."""
    if isinstance(data, dict) and isinstance(data.get("problems"), list):
        return [str(row["task_id"]) for row in data["problems"] if row.get("look_alike")]
    return None


def look_alikes(report_path: Path) -> set[str]:
    """Task ids flagged as look-alikes in a decontam report (all eval sets)."""
    try:
        ids = report_look_alikes(json.loads(report_path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        ids = None
        reason = str(exc)
    else:
        reason = "no per-problem rows"
    if ids is None:
        raise CommandError(
            f"{report_path} is not a `docomplete train decontam-report` JSON ({reason}): "
            "pass the .json that command wrote"
        )
    return set(ids)


def _group(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    keys = sorted(
        {k for row in rows for k in row if k.startswith("pass@")}, key=lambda k: int(k[5:])
    )
    out: dict[str, Any] = {"problems": len(rows), "solved": sum(r["correct"] > 0 for r in rows)}
    for key in keys:
        values = [float(r[key]) for r in rows if key in r]
        out[key] = sum(values) / len(values) if values else None
    picks = [float(r["filtered_pick_pass"]) for r in rows if "filtered_pick_pass" in r]
    out["filtered_pass@1"] = sum(picks) / len(picks) if picks else None
    return out


def split_run(run_dir: Path, flagged: set[str]) -> dict[str, Any]:
    path = run_dir / PER_PROBLEM_FILE
    if not path.exists():
        raise CommandError(f"{path} not found: pass a finished `eval run` or `eval score` dir")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    alike = [r for r in rows if str(r["task_id"]) in flagged]
    rest = [r for r in rows if str(r["task_id"]) not in flagged]
    return {
        "run": str(run_dir),
        "look_alike_ids": sorted(str(r["task_id"]) for r in alike),
        "look_alike": _group(alike),
        "rest": _group(rest),
        "all": _group(rows),
    }


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def split_text(result: dict[str, Any]) -> str:
    keys = [k for k in result["all"] if k.startswith("pass@")] + ["filtered_pass@1"]
    lines = [f"{result['run']}: look-alikes = {', '.join(result['look_alike_ids']) or 'none'}"]
    lines.append("| problems | n | solved | " + " | ".join(keys) + " |")
    lines.append("|---|---:|---:|" + "---:|" * len(keys))
    for name in ("look_alike", "rest", "all"):
        group = result[name]
        cells = " | ".join(_pct(group.get(k)) for k in keys)
        lines.append(f"| {name} | {group['problems']} | {group['solved']} | {cells} |")
    return "\n".join(lines)


def cmd_split(runs: Sequence[Path], report: Path, out: Path | None) -> int:
    if not report.exists():
        raise CommandError(f"{report} not found: run `docomplete train decontam-report` first")
    flagged = look_alikes(report)
    results = [split_run(run, flagged) for run in runs]
    for result in results:
        print(split_text(result))
    if out is not None:
        write_json_atomic(out, results)
        print(f"wrote {out}")
    return 0
