"""``docomplete eval paraphrase``: does the backend solve a problem however its docstring is put?

A study folder holds ``paraphrase_config.json``, ``variants/v0.jsonl`` (the original problems)
and ``v1.jsonl`` … ``vK.jsonl`` (one seeded rewrite of every problem each, see
:mod:`evalkit.paraphrase`), ``variants/manifest.jsonl`` (which rewrites each problem got), one
ordinary, resumable run directory per variant set under ``runs/``, and at the end
``paraphrase.json`` / ``paraphrase.md``: how often a problem's verdict flips between wordings
(against what sampling noise alone would flip), the spread of pass@1 across the sets, each set
against the original with a paired interval, and the most fragile problems.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.data import Problem
from evalkit.paraphrase import paraphrase_variants
from evalkit.stats import compare_paired, format_p

PARAPHRASE_CONFIG = "paraphrase_config.json"
MANIFEST = "manifest.jsonl"
NULL_DRAWS = 2_000
FRAGILE_SHOWN = 10


class ParaphraseError(ValueError):
    """The study cannot go on; ``str(error)`` is one line naming the fix."""


def variant_name(index: int) -> str:
    """``v0`` is the original wording, ``v1``… the rewrites."""
    return f"v{index}"


def build_variants(
    problems: Sequence[Problem],
    count: int,
    seed: int,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    workers: int | None = None,
) -> tuple[list[list[Problem]], list[dict[str, Any]]]:
    """The problem sets v0…v``count`` and the manifest; each rewrite checked in the sandbox.

    A rewrite must keep the (renamed) canonical solution passing the hidden test wherever the
    original does; one that does not falls back to the original wording.
    """
    from evalkit import sandbox

    rewrites = {problem.task_id: paraphrase_variants(problem, count, seed) for problem in problems}
    pairs = [(p.program(p.canonical_solution), p.test_program()) for p in problems]
    for problem in problems:
        pairs += [
            (r.problem.program(r.problem.canonical_solution), r.problem.test_program())
            for r in rewrites[problem.task_id]
        ]
    verdicts = iter(
        sandbox.check_many(pairs, workers=workers, timeout_s=timeout_s, memory_mb=memory_mb)
    )
    original_ok = {problem.task_id: next(verdicts).passed for problem in problems}
    sets: list[list[Problem]] = [list(problems)] + [[] for _ in range(count)]
    manifest: list[dict[str, Any]] = []
    for problem in problems:
        manifest.append({"task_id": problem.task_id, "variant": 0, "transforms": [], "note": ""})
        for index, rewrite in enumerate(rewrites[problem.task_id], start=1):
            verdict = next(verdicts)
            chosen, transforms, note = rewrite.problem, list(rewrite.transforms), rewrite.note
            if transforms and not verdict.passed and original_ok[problem.task_id]:
                chosen, transforms = problem, []
                note = f"reverted: the canonical solution {verdict.status} after the rewrite"
            elif transforms and not original_ok[problem.task_id]:
                note = "unverified: the original canonical solution fails its own test"
            sets[index].append(chosen)
            manifest.append(
                {
                    "task_id": problem.task_id,
                    "variant": index,
                    "transforms": transforms,
                    "note": note,
                }
            )
    return sets, manifest


def write_variants(
    folder: Path, sets: Sequence[Sequence[Problem]], manifest: list[dict]
) -> list[Path]:
    """One JSONL per variant set (an existing one must match: same settings) and the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    files = {
        folder / f"{variant_name(i)}.jsonl": "".join(json.dumps(asdict(p)) + "\n" for p in problems)
        for i, problems in enumerate(sets)
    }
    files[folder / MANIFEST] = "".join(json.dumps(row) + "\n" for row in manifest)
    for path, text in files.items():
        if path.exists() and path.read_text() != text:
            raise ParaphraseError(
                f"{path} was made with other settings (--dataset, --limit, --paraphrases, "
                "--seed); rerun with those or pick a new --out"
            )
        if not path.exists():
            path.write_text(text)
        paths.append(path)
    return paths[:-1]


def _solved(correct: np.ndarray, n: np.ndarray, rule: str) -> np.ndarray:
    return correct > 0 if rule == "any" else 2 * correct >= n


def _null_draws(
    correct: np.ndarray, n: np.ndarray, rule: str, draws: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flip rate and spread statistic when wording does not matter, ``draws`` times.

    Each problem's samples from all variant sets are pooled and dealt back at random into
    sets of the same sizes (hypergeometric draws): what sampling noise alone produces.
    """
    rng = np.random.default_rng(seed)
    problems, sets = correct.shape
    flips = np.zeros(draws)
    spread = np.zeros(draws)
    for row in range(problems):
        good = np.full(draws, int(correct[row].sum()))
        bad = np.full(draws, int((n[row] - correct[row]).sum()))
        dealt = np.zeros((draws, sets), dtype=int)
        for column in range(sets):
            size = int(n[row, column])
            if column == sets - 1:
                took = good
            elif size:
                took = rng.hypergeometric(good, bad, size)
            else:
                took = np.zeros(draws, dtype=int)
            dealt[:, column] = took
            good, bad = good - took, bad - (size - took)
        verdicts = _solved(dealt, np.broadcast_to(n[row], dealt.shape), rule)
        flips += verdicts.any(axis=1) & ~verdicts.all(axis=1)
        spread += (dealt / n[row]).var(axis=1)
    return flips / problems, spread


def paraphrase_payload(
    tables: Sequence[dict[str, dict[str, Any]]],
    manifest: Sequence[dict[str, Any]],
    *,
    solved_if: str,
    alpha: float = 0.05,
    resamples: int = 2_000,
    seed: int = 0,
) -> dict[str, Any]:
    """The study's numbers from each variant set's per-problem rows (v0 first)."""
    task_ids = [t for t in tables[0] if all(t in table for table in tables)]
    if not task_ids:
        raise ParaphraseError("the variant runs share no scored problems")
    correct = np.array([[int(table[t]["correct"]) for table in tables] for t in task_ids])
    n = np.array([[int(table[t]["n"]) for table in tables] for t in task_ids])
    rate = correct / n
    verdicts = _solved(correct, n, solved_if)
    flipped: np.ndarray = np.asarray(verdicts.any(axis=1) & ~verdicts.all(axis=1))
    null_flips, null_spread = _null_draws(correct, n, solved_if, NULL_DRAWS, seed)
    observed_spread = float(rate.var(axis=1).sum())
    transforms: dict[int, Counter[str]] = {}
    for row in manifest:
        transforms.setdefault(int(row["variant"]), Counter()).update(row["transforms"])
    sets = []
    for index, table in enumerate(tables):
        picks = [float(table[t].get("filtered_pick_pass") or 0.0) for t in task_ids]
        entry: dict[str, Any] = {
            "variant": variant_name(index),
            "pass@1": float(rate[:, index].mean()),
            "filtered_pass@1": float(np.mean(picks)),
            "transforms": dict(transforms.get(index, Counter())),
        }
        if index:
            versus = compare_paired(
                list(rate[:, 0]),
                list(rate[:, index]),
                metric="pass@1",
                alpha=alpha,
                resamples=resamples,
                seed=seed + index,
            )
            entry["vs_original"] = versus.to_json()
        sets.append(entry)
    per_set = [entry["pass@1"] for entry in sets]
    ranges = rate.max(axis=1) - rate.min(axis=1)
    order = sorted(range(len(task_ids)), key=lambda i: (-ranges[i], -int(flipped[i]), task_ids[i]))
    notes = {(r["task_id"], int(r["variant"])): r["transforms"] for r in manifest}
    fragile = [
        {
            "task_id": task_ids[i],
            "pass@1": [float(x) for x in rate[i]],
            "range": float(ranges[i]),
            "flips": bool(flipped[i]),
            "transforms": [notes.get((task_ids[i], j), []) for j in range(len(tables))],
        }
        for i in order[:FRAGILE_SHOWN]
        if ranges[i] > 0
    ]
    return {
        "problems": len(task_ids),
        "variant_sets": len(tables),
        "solved_if": solved_if,
        "flip_rate": float(flipped.mean()),
        "flipped_problems": int(flipped.sum()),
        "flip_rate_from_noise": float(null_flips.mean()),
        "wording_effect_p": float(
            (1 + np.sum(null_spread >= observed_spread - 1e-12)) / (1 + NULL_DRAWS)
        ),
        "spread": {
            "min": min(per_set),
            "max": max(per_set),
            "range": max(per_set) - min(per_set),
            "std": float(np.std(per_set)),
        },
        "sets": sets,
        "fragile": fragile,
    }


def format_paraphrase(payload: dict[str, Any]) -> str:
    """The tables ``eval paraphrase`` prints."""
    lines = [
        "| set | rewrites applied | pass@1 | vs original (pp, 95% CI) | p | filtered pass@1 |",
        "|---|---|---|---|---|---|",
    ]
    for entry in payload["sets"]:
        versus = entry.get("vs_original")
        applied = (
            ", ".join(f"{k} {v}" for k, v in sorted(entry["transforms"].items())) or "original"
        )
        change = (
            f"{100 * versus['difference']:+.1f} [{100 * versus['ci_low']:+.1f}, "
            f"{100 * versus['ci_high']:+.1f}]"
            if versus
            else "—"
        )
        p_value = format_p(versus["p_value"]) if versus else "—"
        lines.append(
            f"| {entry['variant']} | {applied} | {100 * entry['pass@1']:.1f}% | {change} | "
            f"{p_value} | {100 * entry['filtered_pass@1']:.1f}% |"
        )
    spread = payload["spread"]
    effect_p = format_p(payload["wording_effect_p"])
    rule = "any sample passes" if payload["solved_if"] == "any" else "most samples pass"
    lines += [
        "",
        f"verdict flips (solved = {rule}): {payload['flipped_problems']} of {payload['problems']} "
        f"problems ({100 * payload['flip_rate']:.1f}%); sampling noise alone would flip "
        f"{100 * payload['flip_rate_from_noise']:.1f}%",
        f"pass@1 across the {payload['variant_sets']} sets: {100 * spread['min']:.1f}% … "
        f"{100 * spread['max']:.1f}% (range {100 * spread['range']:.1f} pp, "
        f"std {100 * spread['std']:.1f} pp); wording effect beyond noise: "
        f"p {'' if effect_p.startswith('<') else '= '}{effect_p}",
    ]
    if payload["fragile"]:
        names = " | ".join(entry["variant"] for entry in payload["sets"])
        lines += ["", "most fragile problems (pass@1 per set):", "", f"| task | {names} | range |"]
        lines.append("|---" * (len(payload["sets"]) + 2) + "|")
        for row in payload["fragile"]:
            cells = " | ".join(f"{100 * x:.0f}%" for x in row["pass@1"])
            lines.append(f"| {row['task_id']} | {cells} | {100 * row['range']:.0f} pp |")
    return "\n".join(lines)
