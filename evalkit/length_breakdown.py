"""Pass rates by docstring length, for ``eval report`` (the Codex paper: longer asks fail more).

Length is counted in simple tokens (words and punctuation marks, ``\\w+|[^\\w\\s]``) of the
entry point's docstring, so the buckets mean the same for every backend and tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from evalkit.data import Problem
from evalkit.prompt_site import site_for_prompt


def docstring_of(problem: Problem) -> str:
    """The entry point's docstring (where the editor looks for examples), or the whole prompt."""
    site = site_for_prompt(problem.prompt, problem.entry_point)
    return site.docstring if site.docstring is not None else problem.prompt


TOKEN_RE = re.compile(r"\w+|[^\w\s]")
#: Lower edges of the buckets; the last one is open-ended.
BUCKET_EDGES = (0, 25, 50, 100, 200)


def docstring_tokens(problem: Problem) -> int:
    """Tokens in the entry point's docstring."""
    return len(TOKEN_RE.findall(docstring_of(problem)))


def bucket_label(tokens: int) -> str:
    """``"50–99"``-style name of the bucket ``tokens`` falls in."""
    lower = max(edge for edge in BUCKET_EDGES if edge <= tokens)
    index = BUCKET_EDGES.index(lower)
    if index + 1 < len(BUCKET_EDGES):
        return f"{lower}–{BUCKET_EDGES[index + 1] - 1}"
    return f"{lower}+"


def length_breakdown(
    problems: Iterable[Problem], per_problem: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per non-empty bucket: problems, mean length, mean pass@k, filtered pass@1."""
    lengths = {problem.task_id: docstring_tokens(problem) for problem in problems}
    metrics = [
        key for key in ("pass@1", "pass@10", "pass@100") if per_problem and key in per_problem[0]
    ]
    rows: list[dict[str, Any]] = []
    for edge in BUCKET_EDGES:
        label = bucket_label(edge)
        members = [
            row
            for row in per_problem
            if row["task_id"] in lengths and bucket_label(lengths[row["task_id"]]) == label
        ]
        if not members:
            continue
        entry: dict[str, Any] = {
            "bucket": label,
            "problems": len(members),
            "mean_tokens": sum(lengths[row["task_id"]] for row in members) / len(members),
        }
        for metric in metrics:
            entry[metric] = sum(float(row[metric]) for row in members) / len(members)
        entry["filtered_pass@1"] = sum(
            float(row.get("filtered_pick_pass") or 0.0) for row in members
        ) / len(members)
        rows.append(entry)
    return rows
