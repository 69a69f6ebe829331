"""``docomplete eval sweep / compare / paraphrase / chained``: options and run orchestration.

Each study is a set of ordinary ``eval run`` directories driven through the runner's
``run_generation`` with one backend (the model loads once), so every run in it resumes like
``eval run`` does; the study's own files are computed from those runs at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.run_options import (
    add_generation_options,
    check_generation_options,
    generation_config,
    load_dataset_arg,
    make_run_backend,
    run_resumable,
)
from model.cli_support import CommandError


def register(evals: argparse._SubParsersAction) -> None:
    """Add the study subcommands to ``docomplete eval``."""
    sweep = evals.add_parser(
        "sweep",
        help="one run per sampling temperature; pass@k against T (resumable)",
        description="Run the backend at several temperatures (one resumable run each, sharing a "
        "seed), then tabulate and plot pass@k against T with the best T for each k.",
    )
    add_generation_options(sweep, temperature=False)
    sweep.add_argument(
        "--temperatures",
        default="0.2,0.4,0.6,0.8,1.0",
        help="comma-separated temperatures (default 0.2,0.4,0.6,0.8,1.0)",
    )
    sweep.add_argument("--out", required=True, type=Path, help="sweep folder (resumed if present)")
    sweep.set_defaults(func=_cmd_sweep)

    compare = evals.add_parser(
        "compare",
        help="is run B better than run A? paired bootstrap + permutation test",
        description="Compare two finished runs on the same problems: the difference B − A in "
        "pass@1, pass@k and filtered pass@1 with a bootstrap interval over problems, a paired "
        "sign-flip test, a verdict, and the problems needed to detect the difference.",
    )
    compare.add_argument("run_a", type=Path, metavar="RUN_A", help="run (or score) directory A")
    compare.add_argument("run_b", type=Path, metavar="RUN_B", help="run (or score) directory B")
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    compare.add_argument(
        "--resamples", type=int, default=10_000, help="bootstrap / permutation draws (10000)"
    )
    compare.add_argument("--seed", type=int, default=0, help="seed of the resampling (0)")
    compare.add_argument("--json", type=Path, help="also write the result here as JSON")
    compare.set_defaults(func=_cmd_compare)

    paraphrase = evals.add_parser(
        "paraphrase",
        help="reword each docstring K ways; how often do verdicts flip? (resumable)",
        description="Write K meaning-preserving rewrites of every problem's docstring (seeded), "
        "run the backend on the original and each rewritten set, and report verdict flips, the "
        "spread of pass@1 and the most fragile problems.",
    )
    add_generation_options(
        paraphrase, seed_help="seed of the rewrites and of sampling (default: recorded, or 0)"
    )
    paraphrase.add_argument(
        "--paraphrases", type=int, default=4, help="rewritten sets besides the original (4)"
    )
    paraphrase.add_argument(
        "--solved-if",
        choices=("majority", "any"),
        default="majority",
        help="a problem counts as solved when most samples pass (default) or any does",
    )
    paraphrase.add_argument("--out", required=True, type=Path, help="study folder (resumed)")
    paraphrase.set_defaults(func=_cmd_paraphrase)

    chained = evals.add_parser(
        "chained",
        help="synthetic chained string operations; pass rate against chain length",
        description="Generate docstrings chaining 1..K string manipulations with hidden tests "
        "(deterministic from --seed), run them like any dataset, and plot pass rate against "
        "the number of components.",
    )
    add_generation_options(
        chained, dataset=False, seed_help="seed of the problems and of sampling (default 0)"
    )
    chained.add_argument("--max-components", type=int, default=13, help="longest chain, 1..13 (13)")
    chained.add_argument(
        "--problems-per-k", type=int, default=20, help="problems per chain length (20)"
    )
    chained.add_argument(
        "--examples", type=int, default=0, help=">>> examples in each docstring (0)"
    )
    chained.add_argument(
        "--dataset-only", action="store_true", help="only write the JSONL, run nothing"
    )
    chained.add_argument("--out", required=True, type=Path, help="study folder (resumed)")
    chained.set_defaults(func=_cmd_chained)


# ----------------------------------------------------------------------------------------------
# Running several runs with one backend


@dataclass(frozen=True)
class RunJob:
    """One run of a study: its label, RunConfig, dataset and run directory."""

    label: str
    config: Any
    dataset: Any
    out: Path


def run_jobs(jobs: Sequence[RunJob], backend: Any, args: argparse.Namespace) -> list[Any]:
    """Every job's summary, one after the other through ``run_generation`` (each resumable)."""
    from evalkit.runner import ExecutionSettings, run_generation

    concurrency = args.concurrency
    if concurrency is None:
        urls = [] if args.backend == ["embedded"] else args.backend
        concurrency = 4 * len(urls) if urls else 1

    async def main() -> list[Any]:
        summaries = []
        try:
            for index, job in enumerate(jobs, start=1):
                print(f"[{index}/{len(jobs)}] {job.label} → {job.out}", file=sys.stderr, flush=True)
                execution = ExecutionSettings(
                    timeout_s=job.config.timeout_s,
                    memory_mb=job.config.memory_mb,
                    workers=args.workers,
                )
                summaries.append(
                    await run_generation(
                        job.config,
                        job.dataset,
                        backend,
                        job.out,
                        execution=execution,
                        concurrency=concurrency,
                        progress=not args.no_progress,
                    )
                )
        finally:
            await backend.aclose()
        return summaries

    return run_resumable(main())


def _study_seed(args: argparse.Namespace, config_path: Path) -> int:
    """``--seed``, else the one recorded in the study folder, else 0 (a fixed benchmark)."""
    if args.seed is not None:
        return int(args.seed)
    try:
        return int(json.loads(config_path.read_text())["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _settings(args: argparse.Namespace, model: str | None, seed: int) -> dict[str, Any]:
    return {
        "backend": " ".join(args.backend),
        "model": model,
        "n": args.n,
        "temperature": getattr(args, "temperature", None),
        "top_p": args.top_p,
        "max_tokens": args.max_tokens,
        "seed": seed,
    }


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------
# The commands


def _cmd_sweep(args: argparse.Namespace) -> int:
    from evalkit.sweep import (
        SweepError,
        format_sweep,
        parse_temperatures,
        prepare_sweep,
        sweep_payload,
        temperature_dir,
        write_sweep,
    )

    check_generation_options(args)
    dataset = load_dataset_arg(args.dataset)
    try:
        temperatures = parse_temperatures(args.temperatures)
        seed = prepare_sweep(args.out, args.seed)
    except SweepError as exc:
        raise CommandError(str(exc)) from None
    backend, backend_desc, model_id = make_run_backend(args.backend, args.model, args.model_name)
    jobs = [
        RunJob(
            f"T={t:g}",
            generation_config(
                args, dataset, seed=seed, backend=backend_desc, model=model_id, temperature=t
            ),
            dataset,
            temperature_dir(args.out, t),
        )
        for t in temperatures
    ]
    summaries = run_jobs(jobs, backend, args)
    settings = _settings(args, model_id, seed)
    settings.update(dataset=jobs[0].config.dataset, problems=summaries[0]["problems"])
    payload = sweep_payload(args.out, list(zip(temperatures, summaries, strict=True)), settings)
    paths = write_sweep(args.out, payload)
    print(format_sweep(payload))
    print("written: " + ", ".join(str(path) for path in paths))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from evalkit.compare import CompareError, compare_runs, format_comparison
    from evalkit.stats import MIN_RESAMPLES

    if not 0 < args.alpha < 1:
        raise CommandError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.resamples < MIN_RESAMPLES:
        raise CommandError(f"--resamples must be at least {MIN_RESAMPLES}, got {args.resamples}")
    try:
        payload = compare_runs(
            args.run_a, args.run_b, alpha=args.alpha, resamples=args.resamples, seed=args.seed
        )
    except CompareError as exc:
        raise CommandError(str(exc)) from None
    print(format_comparison(payload))
    if args.json:
        _write_json(args.json, payload)
        print(f"written: {args.json}")
    return 0


def _cmd_paraphrase(args: argparse.Namespace) -> int:
    from evalkit.compare import load_run_table
    from evalkit.data import load_dataset
    from evalkit.paraphrase_study import (
        PARAPHRASE_CONFIG,
        ParaphraseError,
        build_variants,
        format_paraphrase,
        paraphrase_payload,
        variant_name,
        write_variants,
    )

    check_generation_options(args)
    if args.paraphrases < 1:
        raise CommandError(f"--paraphrases must be >= 1, got {args.paraphrases}")
    base = load_dataset_arg(args.dataset)
    problems = list(base.problems[: args.limit] if args.limit else base.problems)
    seed = _study_seed(args, args.out / PARAPHRASE_CONFIG)
    print(
        f"rewriting {len(problems)} problems {args.paraphrases} ways (seed {seed}) and checking "
        "each rewrite's canonical solution in the sandbox…",
        file=sys.stderr,
        flush=True,
    )
    sets, manifest = build_variants(
        problems,
        args.paraphrases,
        seed,
        timeout_s=args.timeout,
        memory_mb=args.memory_mb,
        workers=args.workers,
    )
    try:
        paths = write_variants(args.out / "variants", sets, manifest)
    except ParaphraseError as exc:
        raise CommandError(str(exc)) from None
    _write_json(
        args.out / PARAPHRASE_CONFIG,
        {"kind": "paraphrase", "dataset": args.dataset, "seed": seed, "limit": args.limit},
    )
    reverted = sum(row["note"].startswith("reverted") for row in manifest)
    if reverted:
        print(f"note: {reverted} rewrites broke the canonical solution and were reverted")
    backend, backend_desc, model_id = make_run_backend(args.backend, args.model, args.model_name)
    run_args = argparse.Namespace(**{**vars(args), "limit": None})
    jobs = []
    for index, path in enumerate(paths):
        dataset = load_dataset(path)
        config = generation_config(
            run_args, dataset, seed=seed, backend=backend_desc, model=model_id
        )
        label = "original wording" if index == 0 else f"rewritten set {index}"
        jobs.append(RunJob(label, config, dataset, args.out / "runs" / variant_name(index)))
    run_jobs(jobs, backend, args)
    tables = [load_run_table(job.out).rows for job in jobs]
    try:
        payload = paraphrase_payload(tables, manifest, solved_if=args.solved_if, seed=seed)
    except ParaphraseError as exc:
        raise CommandError(str(exc)) from None
    payload["settings"] = {**_settings(args, model_id, seed), "dataset": args.dataset}
    text = format_paraphrase(payload)
    _write_json(args.out / "paraphrase.json", payload)
    (args.out / "paraphrase.md").write_text(f"# Paraphrase study\n\n{text}\n")
    print(text)
    print(f"written: {args.out / 'paraphrase.json'}, {args.out / 'paraphrase.md'}")
    return 0


def _cmd_chained(args: argparse.Namespace) -> int:
    from evalkit.chained import (
        CHAINED_CONFIG,
        CHAINED_JSONL,
        chained_payload,
        format_chained,
        generate_problems,
        plot_chained,
        write_dataset,
    )
    from evalkit.compare import load_run_table

    check_generation_options(args)
    seed = _study_seed(args, args.out / CHAINED_CONFIG)
    try:
        rows = generate_problems(args.max_components, args.problems_per_k, seed, args.examples)
        write_dataset(args.out / CHAINED_JSONL, rows)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    _write_json(
        args.out / CHAINED_CONFIG,
        {
            "kind": "chained",
            "seed": seed,
            "max_components": args.max_components,
            "problems_per_k": args.problems_per_k,
            "examples": args.examples,
        },
    )
    print(f"{len(rows)} problems in {args.out / CHAINED_JSONL}")
    if args.dataset_only:
        return 0
    args.dataset = str(args.out / CHAINED_JSONL)
    dataset = load_dataset_arg(args.dataset)
    backend, backend_desc, model_id = make_run_backend(args.backend, args.model, args.model_name)
    config = generation_config(args, dataset, seed=seed, backend=backend_desc, model=model_id)
    run_jobs([RunJob("chained benchmark", config, dataset, args.out / "run")], backend, args)
    table = load_run_table(args.out / "run")
    payload = chained_payload(list(table.rows.values()), seed=seed)
    payload["settings"] = {**_settings(args, model_id, seed), "examples": args.examples}
    _write_json(args.out / "chained.json", payload)
    text = format_chained(payload)
    (args.out / "chained.md").write_text(
        f"# Chained string operations\n\n{text}\n\n![pass rate](chained.png)\n"
    )
    plot_chained(
        payload,
        args.out / "chained.png",
        f"chained string operations (n={args.n}, T={args.temperature:g}, "
        f"{args.problems_per_k} problems per length)",
    )
    print(text)
    print(
        "written: "
        + ", ".join(str(args.out / f) for f in ("chained.json", "chained.md", "chained.png"))
    )
    return 0
