"""Command-line plumbing every package shares: the user-facing error and benchmark output.

Light tier, stdlib only. ``server``, ``evalkit`` and ``model`` all import it; it imports nothing
of theirs, so no package has to depend on the editor package to report an error.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class CommandError(Exception):
    """A user-facing error: ``docomplete`` prints it as one line and exits with status 2."""


def machine_summary() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned text table; floats get 2 decimals (or 4 when small)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 1 else f"{v:,.2f}"
        return str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def emit_bench(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    figures: Mapping[str, Any],
    json_path: str | Path | None = None,
) -> None:
    """Print ``title`` and a table; write ``figures`` (+ machine facts) to ``json_path`` if given.

    Figures comparing against a baseline carry a ``ratio`` key.
    """
    print(f"\n{title}")
    print(format_table(headers, rows))
    extra = {k: v for k, v in figures.items() if not isinstance(v, (list, dict))}
    if extra:
        print(
            "  "
            + "  ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items()
            )
        )
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "benchmark": title,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine_summary(),
            **figures,
        }
        path.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"  figures written to {path}")
