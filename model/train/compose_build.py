"""Compose tasks into a fine-tuning data set: deduplicate, verify in the sandbox, size the space.

``generate`` draws tasks from ``compose.iter_tasks``, drops repeated prompts (and anything a
caller-supplied ``reject`` flags, e.g. HumanEval n-gram overlap), and runs each task's own
doctests in evalkit's sandbox, replacing failures, until it has ``count`` records.
``space_size`` counts the typed chains and their constant choices.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from model.train.compose import OPS, OPS_TAKING, REJECT_AFTER, iter_tasks, result_type
from model.train.compose_ops import ANY_LIST, CONST_DRAWS, DI, DL, LI, LS, Op

VERIFY_CHUNK = 100  # tasks per sandboxed program
BATCH = 2000  # tasks drawn between verification rounds
MAX_REPEATS = 3  # copies of one semantic task (chain + constants), each worded anew
HELDOUT = Path(__file__).resolve().parents[2] / "evalkit" / "datasets" / "heldout_practical.jsonl"

# Runs inside the sandbox after the program (which defines TASKS = [(source, name), ...]).
VERIFY_TEST = """
import doctest


def _doctest_counts(source, name):
    namespace = {"__name__": "composed_task"}
    exec(source, namespace)
    docstring = namespace[name].__doc__ or ""
    test = doctest.DocTestParser().get_doctest(docstring, namespace, name, None, 0)
    runner = doctest.DocTestRunner(verbose=False, optionflags=0)
    runner.run(test, out=lambda _text: None)
    return runner.tries, runner.failures


for _source, _name in TASKS:
    _tries, _failures = _doctest_counts(_source, _name)
    assert _tries >= 2
    assert _failures == 0
"""


def reserved_names() -> set[str]:
    """Function names the generator must not use: HumanEval's and the held-out set's."""
    from model.train.synth import eval_entry_points

    names = set(eval_entry_points())
    if HELDOUT.exists():
        with open(HELDOUT, encoding="utf-8") as handle:
            names |= {json.loads(line)["entry_point"] for line in handle if line.strip()}
    return names


def task_name(record: dict) -> str:
    return str(record["source"]).split(":", 1)[1]


def verify_tasks(records: Sequence[dict], *, workers: int | None = None) -> list[bool]:
    """Whether each task's doctests pass when run in the sandbox (chunked; a failing chunk
    is re-checked task by task)."""
    from evalkit.sandbox import check_many

    def program(chunk: Sequence[dict]) -> str:
        tasks = [(r["prompt"] + r["completion"], task_name(r)) for r in chunk]
        return f"TASKS = {tasks!r}\n"

    chunks = [records[i : i + VERIFY_CHUNK] for i in range(0, len(records), VERIFY_CHUNK)]
    results = check_many([(program(c), VERIFY_TEST) for c in chunks], workers=workers, timeout_s=30)
    verdicts: list[bool] = []
    for chunk, result in zip(chunks, results, strict=True):
        if result.status == "passed":
            verdicts += [True] * len(chunk)
            continue
        singles = check_many([(program([r]), VERIFY_TEST) for r in chunk], workers=workers)
        verdicts += [single.status == "passed" for single in singles]
    return verdicts


def _progress(total: int, enabled: bool) -> Any:
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, unit="task", file=sys.stderr, dynamic_ncols=True)
        except ImportError:
            pass
    return None


def generate(
    count: int,
    seed: int = 0,
    *,
    verify: bool = True,
    reserved: set[str] | None = None,
    reject: Callable[[dict], bool] | None = None,
    progress: bool = False,
    workers: int | None = None,
    max_repeats: int = MAX_REPEATS,
) -> tuple[list[dict], dict[str, Any]]:
    """``count`` distinct task records (deterministic per seed) and a report of what was
    drawn, dropped as a duplicate, rejected, and failed in the sandbox.

    Short chains over few operations come up again and again; a semantic task (same chain,
    same constants) is kept at most ``max_repeats`` times, each time with other words and
    examples."""
    reserved = reserved_names() if reserved is None else reserved
    stats: dict[str, int] = {}
    tasks = iter_tasks(seed, reserved, stats)
    kept: list[dict] = []
    seen_prompts: set[str] = set()
    seen_keys: dict[str, int] = {}
    counts = {"drawn": 0, "duplicate_prompts": 0, "repeated_semantics": 0, "rejected": 0}
    counts["over_repeat_cap"] = 0
    counts["failed_verification"] = 0
    bar = _progress(count, progress)
    while len(kept) < count:
        batch: list[dict] = []
        while len(batch) < min(count - len(kept), BATCH):
            record = next(tasks)
            counts["drawn"] += 1
            if record["prompt"] in seen_prompts:
                counts["duplicate_prompts"] += 1
                continue
            seen_prompts.add(record["prompt"])
            if reject is not None and reject(record):
                counts["rejected"] += 1
                continue
            key = record.pop("task_key")
            seen = seen_keys.get(key, 0)
            if seen >= max_repeats:
                counts["over_repeat_cap"] += 1
                continue
            counts["repeated_semantics"] += seen > 0
            seen_keys[key] = seen + 1
            batch.append(record)
        verdicts = verify_tasks(batch, workers=workers) if verify else [True] * len(batch)
        passed = [r for r, ok in zip(batch, verdicts, strict=True) if ok]
        counts["failed_verification"] += len(batch) - len(passed)
        kept += passed
        if bar is not None:
            bar.update(len(passed))
    if bar is not None:
        bar.close()
    lengths: dict[int, int] = {}
    for record in kept:
        steps = record["ops"].count(">") + 1
        lengths[steps] = lengths.get(steps, 0) + 1
    report: dict[str, Any] = {
        "count": len(kept),
        "seed": seed,
        "verified_in_sandbox": verify,
        **counts,
        "chains_without_informative_examples": stats.get("no_informative_examples", 0),
        "body_mismatches": stats.get("body_mismatch", 0),
        "distinct_semantic_tasks": len(seen_keys),
        "chain_lengths": dict(sorted(lengths.items())),
        "operations": len(OPS),
    }
    return kept, report


# ---------------------------------------------------------------- size of the space


def _const_choices(kind: str) -> int:
    r = random.Random(0)
    return len({repr(CONST_DRAWS[kind](r)) for _ in range(2000)})


def _variants(op: Op) -> int:
    """Constant settings of one operation: every literal choice, plus one promoted argument."""
    sizes = [_const_choices(c.kind) for c in op.consts]
    total = 1
    for size in sizes:
        total *= size
    for i, const in enumerate(op.consts):
        if const.params:
            rest = 1
            for j, size in enumerate(sizes):
                rest *= size if j != i else 1
            total += rest
    return total


def space_size(max_length: int = 4) -> dict[str, int]:
    """Typed chains of 1..max_length steps allowed by the chain rules and their constant
    settings. The no-repeat rule is not tracked, so this slightly over-counts."""
    variants = {op.key: _variants(op) for op in OPS}

    @cache
    def extend(type_: str, pending: frozenset[str], case_used: bool, left: int) -> tuple[int, int]:
        chains, tasks = 1, 1  # stopping here is one chain
        if left == 0:
            return chains, tasks
        for op in OPS_TAKING.get(type_, []):
            blockers = set().union(*(REJECT_AFTER[t] for t in op.tags if t in REJECT_AFTER))
            if blockers & pending or ("case" in op.tags and case_used):
                continue
            keep = op.kind in ("map", "filter")
            after = pending if keep else frozenset(op.tags & {"order", "dup"})
            more_chains, more_tasks = extend(
                result_type(op, type_), after, case_used or "case" in op.tags, left - 1
            )
            chains += more_chains
            tasks += variants[op.key] * more_tasks
        return chains, tasks

    total_chains = total_tasks = 0
    for op in OPS:
        starts = {ANY_LIST: (LI, LS), "dict": (DI, DL)}.get(op.takes[0], (op.takes[0],))
        for start in starts:
            chains, tasks = extend(
                result_type(op, start),
                frozenset(op.tags & {"order", "dup"}),
                "case" in op.tags,
                max_length - 1,
            )
            total_chains += chains
            total_tasks += variants[op.key] * tasks
    return {"operations": len(OPS), "chains": total_chains, "semantic_tasks": total_tasks}
