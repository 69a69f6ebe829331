"""``docomplete train compose / mine / decontam-report``: the data-set commands of model v2.

Registered by ``model.train.commands``; heavy or slow modules are imported inside handlers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from model.cli_support import CommandError


def register_data_commands(sub: argparse._SubParsersAction, data: Path) -> None:
    """Add the ``compose``, ``mine`` and ``decontam-report`` steps under ``train``."""
    mine = sub.add_parser(
        "mine", help="mine every documented function and method (doctests run in the sandbox)"
    )
    mine.add_argument("--corpus", type=Path, default=data / "corpus")
    mine.add_argument("--out", type=Path, default=data / "finetune" / "mined.jsonl")
    mine.add_argument("--no-methods", dest="methods", action="store_false")
    mine.add_argument(
        "--no-sandbox-filter",
        dest="sandbox_filter",
        action="store_false",
        help="keep examples whose doctests fail (default: drop them)",
    )
    mine.set_defaults(func=_cmd_mine)

    comp = sub.add_parser(
        "compose", help="generate compositional docstring tasks (typed operation chains)"
    )
    comp.add_argument("--n", type=int, default=10000, help="tasks to write")
    comp.add_argument("--seed", type=int, default=0)
    comp.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    comp.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip running each task's doctests in the sandbox",
    )
    comp.add_argument("--no-progress", dest="progress", action="store_false")
    comp.add_argument("--report", type=Path, help="also write the report JSON here")
    comp.set_defaults(func=_cmd_compose)

    dec = sub.add_parser(
        "decontam-report",
        help="per eval problem, the nearest training docstrings and a look-alike flag",
    )
    dec.add_argument(
        "--data", type=Path, nargs="+", required=True, metavar="JSONL", help="training data"
    )
    dec.add_argument(
        "--eval",
        type=Path,
        action="append",
        default=None,
        metavar="JSONL",
        help="eval problems (default: HumanEval and the held-out practical set)",
    )
    dec.add_argument("--out", type=Path, required=True, help="report JSON (+ a .md beside it)")
    dec.add_argument("--threshold", type=float, default=None, help="look-alike score (0-1)")
    dec.add_argument("--top-k", type=int, default=5, help="neighbours listed per problem")
    dec.add_argument(
        "--run-neighbours",
        type=int,
        default=10,
        metavar="K",
        help="run the K nearest training functions against each problem's tests (0: off)",
    )
    dec.set_defaults(func=_cmd_decontam_report)


def _require(path: Path, what: str, fix: str) -> None:
    if not path.exists():
        raise CommandError(f"{what} not found at {path}: {fix}")


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


def mine_all(
    corpus: Path, *, methods: bool, sandbox_filter: bool
) -> tuple[list[dict], dict, int, int]:
    from model.train.mine import mine_corpus_all, verify_doctests

    examples, modules = mine_corpus_all(corpus, methods=methods)
    mined = len(examples)
    with_doctests = sum(e["has_doctest"] for e in examples)
    counts: dict = {}
    if sandbox_filter:
        examples, counts = verify_doctests(examples, modules)
    return examples, counts, mined, with_doctests


def _cmd_mine(args: argparse.Namespace) -> int:
    import time

    _require(args.corpus / "train.jsonl", "corpus", "run `docomplete train corpus` first")
    started = time.perf_counter()
    examples, counts, mined, with_doctests = mine_all(
        args.corpus / "train.jsonl", methods=args.methods, sandbox_filter=args.sandbox_filter
    )
    write_jsonl(args.out, examples)
    kinds: dict[str, int] = {}
    for example in examples:
        key = f"{example['kind']}s" + ("_standalone" if example["standalone"] else "")
        kinds[key] = kinds.get(key, 0) + 1
    report = {
        "mined": mined,
        "mined_with_doctests": with_doctests,
        "doctests_in_sandbox": counts,
        "kept": len(examples),
        "kept_with_verified_doctests": sum("doctest_verified" in e for e in examples),
        "kept_by_kind": kinds,
        "seconds": round(time.perf_counter() - started, 1),
        "out": str(args.out),
    }
    print(json.dumps(report))
    return 0


def _cmd_compose(args: argparse.Namespace) -> int:
    from model.train.compose_build import HELDOUT, generate, space_size
    from model.train.corpus import build_contamination, humaneval_path, read_eval_problems

    if args.n < 1:
        raise CommandError("--n must be at least 1")
    eval_files = [humaneval_path()] + ([HELDOUT] if HELDOUT.exists() else [])
    contamination = build_contamination(read_eval_problems(eval_files))
    records, report = generate(
        args.n,
        args.seed,
        verify=args.verify,
        reject=lambda r: contamination.check(r["prompt"] + r["completion"]) is not None,
        progress=args.progress,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    report["space"] = space_size()
    report["out"] = str(args.out)
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


def _cmd_decontam_report(args: argparse.Namespace) -> int:
    from model.train.compose_build import HELDOUT
    from model.train.corpus import humaneval_path, read_eval_problems
    from model.train.decontam import (
        DEFAULT_THRESHOLD,
        DocIndex,
        behaviour_check,
        markdown,
        read_records,
        summarize,
        task_report,
    )

    for path in args.data:
        _require(path, "training data", "pass existing JSONL files to --data")
    evals = args.eval or [humaneval_path(), *([HELDOUT] if HELDOUT.exists() else [])]
    for path in evals:
        _require(path, "eval problems", "pass existing JSONL files to --eval")
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    try:
        index = DocIndex.build(read_records(args.data))
    except (ValueError, KeyError) as exc:
        raise CommandError(
            f"cannot read training data: {exc}; pass JSONL with a 'prompt'"
        ) from None
    rows = []
    k = max(args.top_k, args.run_neighbours)
    for path in evals:
        name = path.name.removesuffix(".gz").removesuffix(".jsonl")
        problems = read_eval_problems([path])
        part = task_report(problems, index, threshold=threshold, k=k, eval_name=name)
        if args.run_neighbours > 0:
            behaviour_check(problems, part, index, neighbours=args.run_neighbours)
        for row in part:
            row["nearest"] = row["nearest"][: args.top_k]
        rows += part
    summary = summarize(
        rows, threshold, [str(p) for p in args.data], len(index.docs), args.run_neighbours
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "problems": rows}, indent=1) + "\n")
    md_path = args.out.with_suffix(".md")
    md_path.write_text(markdown(summary, rows))
    print(json.dumps(summary["eval_sets"]))
    print(f"wrote {args.out} and {md_path}")
    return 0
