"""``docomplete eval sweep``: one run per sampling temperature, and the Codex paper's Fig. 5.

A sweep folder holds ``sweep_config.json`` (the seed every temperature shares, so a resumed
sweep draws the same samples), one ordinary run directory per temperature (``T0.2``, ``T0.8``,
… — each resumable like any ``eval run``), and at the end ``sweep.json``, ``sweep.md`` and
``sweep.png``: pass@k against T for k = 1, 10, 100 (as n allows), the best T for each k, and
filtered pass@1 (the one candidate the editor shows) beside them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SWEEP_CONFIG = "sweep_config.json"
SWEEP_JSON = "sweep.json"
SWEEP_MD = "sweep.md"
SWEEP_PNG = "sweep.png"
METRICS = ("pass@1", "pass@10", "pass@100", "filtered_pass@1")


class SweepError(ValueError):
    """The sweep cannot run; ``str(error)`` is one line naming the fix."""


def parse_temperatures(text: str) -> list[float]:
    """``"0.2,0.4,0.8"`` → sorted, distinct temperatures (each >= 0)."""
    try:
        values = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise SweepError(
            f"--temperatures takes comma-separated numbers like 0.2,0.4,0.8, got {text!r}"
        ) from None
    if not values or any(value < 0 for value in values):
        raise SweepError(f"--temperatures needs one or more values >= 0, got {text!r}")
    return values


def temperature_dir(root: Path, temperature: float) -> Path:
    """Where the run at ``temperature`` lives: ``root/T0.2``."""
    return root / f"T{temperature:g}"


def prepare_sweep(root: Path, seed: int | None) -> int:
    """Create or reopen the sweep folder; return the seed all its runs share."""
    config_path = root / SWEEP_CONFIG
    if config_path.is_file():
        try:
            recorded = int(json.loads(config_path.read_text())["seed"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SweepError(f"{config_path} is unreadable ({exc}); use a new --out") from None
        if seed is not None and seed != recorded:
            raise SweepError(
                f"{root} is a sweep with seed {recorded}; rerun with --seed {recorded} "
                "(or none) to resume, or pick a new --out"
            )
        return recorded
    if root.exists() and any(root.iterdir()):
        raise SweepError(f"{root} exists and is not a sweep folder; pick a new --out")
    if seed is None:
        import secrets

        seed = secrets.randbits(31)
    root.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps({"kind": "sweep", "seed": seed}, indent=2) + "\n")
    return seed


def sweep_payload(
    root: Path, summaries: Sequence[tuple[float, dict[str, Any]]], settings: dict[str, Any]
) -> dict[str, Any]:
    """The sweep's table (one row per temperature) and the best temperature per metric."""
    rows = []
    for temperature, summary in sorted(summaries, key=lambda item: item[0]):
        row: dict[str, Any] = {
            "temperature": temperature,
            "run": str(temperature_dir(root, temperature)),
            "problems": summary.get("problems"),
            "n": summary.get("n"),
        }
        row.update({metric: summary[metric] for metric in METRICS if metric in summary})
        rows.append(row)
    best: dict[str, dict[str, float]] = {}
    for metric in METRICS:
        scored = [row for row in rows if metric in row]
        if scored:
            # Ties go to the lower temperature: less randomness for the same score.
            top = max(scored, key=lambda row: (row[metric], -row["temperature"]))
            best[metric] = {"temperature": top["temperature"], "value": top[metric]}
    return {"settings": settings, "rows": rows, "best": best}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def format_sweep(payload: dict[str, Any]) -> str:
    """A markdown table of the sweep and the best temperature for each metric."""
    metrics = [m for m in METRICS if any(m in row for row in payload["rows"])]
    header = ["T", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in payload["rows"]:
        cells = [f"{row['temperature']:g}", *(_pct(row.get(m)) for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for metric in metrics:
        top = payload["best"].get(metric)
        if top:
            lines.append(f"best T for {metric}: {top['temperature']:g} ({_pct(top['value'])})")
    rows = payload["rows"]
    if rows:
        lines.append(
            f"({rows[0]['problems']} problems, n={rows[0]['n']} per temperature; is a gap real? "
            "`docomplete eval compare` two of the T* folders)"
        )
    return "\n".join(lines)


def plot_sweep(payload: dict[str, Any], path: Path) -> None:
    """pass@k against T (one line per k, best T marked) and filtered pass@1 dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["rows"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for metric in METRICS:
        points = [(row["temperature"], 100 * row[metric]) for row in rows if metric in row]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        style = "--" if metric.startswith("filtered") else "-"
        label = "filtered pass@1 (shown candidate)" if style == "--" else metric
        (line,) = ax.plot(xs, ys, style, marker="o", label=label)
        top = payload["best"].get(metric)
        if top and style == "-":
            ax.plot(
                [top["temperature"]],
                [100 * top["value"]],
                marker="*",
                markersize=14,
                color=line.get_color(),
            )
    ax.set_xlabel("sampling temperature T")
    ax.set_ylabel("% of problems")
    settings = payload.get("settings", {})
    ax.set_title(
        f"pass@k against temperature ({settings.get('problems', '?')} problems, "
        f"n={settings.get('n', '?')}); ★ = best T",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_sweep(root: Path, payload: dict[str, Any]) -> list[Path]:
    """``sweep.json``, ``sweep.md`` and ``sweep.png`` in the sweep folder; their paths."""
    json_path, md_path, png_path = root / SWEEP_JSON, root / SWEEP_MD, root / SWEEP_PNG
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    md_path.write_text(
        "# Temperature sweep\n\n" + format_sweep(payload) + f"\n\n![sweep]({SWEEP_PNG})\n"
    )
    plot_sweep(payload, png_path)
    return [json_path, md_path, png_path]
