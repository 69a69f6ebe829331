"""``docomplete eval infill``: the single-line infilling benchmark on any backend (resumable).

Hooked into ``docomplete eval`` by ``evalkit/commands.py``; the tasks and figures are in
``evalkit.infill``, the run in ``evalkit.infill_run``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from evalkit.run_options import (
    add_backend_args,
    add_dataset_arg,
    add_execution_args,
    check_generation_options,
    load_dataset_arg,
    make_run_backend,
    run_resumable,
)
from model.cli_support import CommandError


def register(evals: argparse._SubParsersAction) -> None:
    """Add ``infill`` to ``docomplete eval``."""
    infill = evals.add_parser(
        "infill",
        help="single-line infilling: mask each line of HumanEval's solutions (resumable)",
        description="Mask every non-blank line of each canonical solution in turn (1,033 tasks "
        "on HumanEval), ask the backend for it with a fill-in-the-middle prompt (prefix: prompt "
        "and lines above; suffix: lines below), keep the first line of the answer and run the "
        "problem's tests on the result. Re-running with the same --out resumes.",
    )
    add_backend_args(infill)
    add_dataset_arg(infill)
    infill.add_argument(
        "--fim-template",
        default="auto",
        metavar="auto|NAME|TEMPLATE",
        help="the model's FIM format: auto (from its tokenizer or the server's /v1/models), a "
        "family name (qwen, starcoder, codellama, …) or a string with {prefix} and {suffix}",
    )
    infill.add_argument(
        "--prefix-only",
        action="store_true",
        help="prompt with the prefix alone, left to right (for models without FIM tokens); "
        "the report says so",
    )
    infill.add_argument(
        "--problems", help="only these problems: ids or HumanEval numbers, comma-separated"
    )
    infill.add_argument("--limit", type=int, help="only the first K (selected) problems")
    infill.add_argument(
        "--look-alikes",
        metavar="FILE|IDS",
        help="report look-alike problems apart from the rest: a `train decontam-report` JSON, "
        "or ids / HumanEval numbers, comma-separated",
    )
    infill.add_argument("--n", type=int, default=1, help="samples per task (default 1)")
    infill.add_argument(
        "--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 for pass@k"
    )
    infill.add_argument("--top-p", type=float, default=0.95)
    infill.add_argument(
        "--max-tokens", type=int, default=128, help="tokens per answer (default 128)"
    )
    infill.add_argument("--seed", type=int, help="sampling seed (default: recorded one, or 0)")
    infill.add_argument(
        "--samples-per-call", type=int, default=20, help="samples requested per backend call"
    )
    infill.add_argument(
        "--batch-prompts", type=int, default=8, help="prompts per backend call (default 8)"
    )
    infill.add_argument(
        "--concurrency",
        type=int,
        help="backend calls in flight (default: 1 embedded, 4 per URL for model servers)",
    )
    add_execution_args(infill)
    infill.add_argument("--out", required=True, type=Path, help="run directory (resumed)")
    infill.set_defaults(func=_cmd_infill)


def _recorded_seed(out: Path) -> int:
    try:
        return int(json.loads((out / "config.json").read_text())["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _resolve_prompting(args: argparse.Namespace, backend: Any) -> Any:
    """The Prompting for this model, or a CommandError naming the ways forward."""
    from evalkit.infill import Prompting
    from model.fim import FimLookupError, resolve_fim_template

    if args.prefix_only:
        return Prompting(None)
    if args.fim_template.strip().lower() == "none":
        raise CommandError("--fim-template none: for left-to-right prompting pass --prefix-only")
    embedded = args.backend == ["embedded"]
    model_dir = args.model if args.model and Path(args.model).expanduser().is_dir() else None
    try:
        template = resolve_fim_template(args.fim_template, args.backend, model_dir)
    except ValueError as exc:
        raise CommandError(f"--fim-template: {exc}") from None
    except FimLookupError as exc:
        raise CommandError(
            f"{exc}: start the model server, or name its format with --fim-template NAME"
        ) from None
    if template is None:
        which = (
            f"the model at {backend.model_path}"
            if embedded
            else f"the model served at {args.backend[0]}"
        )
        raise CommandError(
            f"{which} has no fill-in-the-middle tokens (no template of model/fim.py matches"
            f"{'' if embedded else ' its /v1/models entry'}): use a FIM-trained model, name its "
            "format with --fim-template NAME, or pass --prefix-only to measure left-to-right "
            "prompting (reported as prefix-only)"
        )
    return Prompting(template)


def _cmd_infill(args: argparse.Namespace) -> int:
    from evalkit.infill import InfillConfig, InfillError, build_tasks, read_look_alikes
    from evalkit.infill import select_problems as choose
    from evalkit.infill_run import run_infill
    from evalkit.runner import ExecutionSettings

    check_generation_options(args)
    if args.temperature == 0 and args.n > 1:
        raise CommandError(
            "--temperature 0 (greedy) gives the same line every time: use --n 1, or a "
            "temperature above 0 for pass@k"
        )
    dataset = load_dataset_arg(args.dataset)
    try:
        problems = choose(dataset, args.problems, args.limit)
        look_alikes = read_look_alikes(args.look_alikes, dataset) if args.look_alikes else None
    except InfillError as exc:
        raise CommandError(str(exc)) from None
    tasks = build_tasks(problems)
    if not tasks:
        raise CommandError("the selected problems have no canonical solution lines to mask")
    backend, backend_desc, model_id = make_run_backend(args.backend, args.model, args.model_name)
    try:
        prompting = _resolve_prompting(args, backend)
    except CommandError:
        asyncio.run(backend.aclose())
        raise
    seed = args.seed if args.seed is not None else _recorded_seed(args.out)
    config = InfillConfig(
        dataset=dataset.name if dataset.name == "humaneval" else str(dataset.path.resolve()),
        dataset_sha256=dataset.sha256,
        backend=backend_desc,
        model=model_id,
        prompting=prompting.mode,
        fim_template=prompting.template_id,
        problems=[problem.task_id for problem in problems] if args.problems else None,
        limit=args.limit,
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        stop=prompting.stop,
        seed=seed,
        samples_per_call=args.samples_per_call,
        batch_prompts=args.batch_prompts,
        timeout_s=args.timeout,
        memory_mb=args.memory_mb,
    )
    concurrency = args.concurrency or (1 if args.backend == ["embedded"] else 4 * len(args.backend))
    print(
        f"{len(tasks)} tasks from {len(problems)} problems; prompting: {prompting.describe()}",
        flush=True,
    )

    async def main() -> dict[str, Any]:
        try:
            return await run_infill(
                tasks,
                prompting,
                config,
                backend,
                args.out,
                dataset_ids=[problem.task_id for problem in dataset.problems],
                dataset_tasks=len(build_tasks(dataset.problems)),
                look_alikes=look_alikes,
                execution=ExecutionSettings(
                    timeout_s=args.timeout, memory_mb=args.memory_mb, workers=args.workers
                ),
                concurrency=concurrency,
                progress=not args.no_progress,
            )
        finally:
            await backend.aclose()

    summary = run_resumable(main())
    from evalkit.infill import format_infill

    print(format_infill(summary))
    print(f"written: {args.out / 'summary.json'}, per_problem.jsonl, per_task.jsonl")
    return 0
