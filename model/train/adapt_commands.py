"""``docomplete train transfer`` and ``train adapt``: the CPU route to a new tokenizer (model v2)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from model.cli_support import CommandError


def register_adapt_commands(
    sub: argparse._SubParsersAction, data: Path, add_loop_args: Callable, loop_config: Callable
) -> None:
    transfer = sub.add_parser(
        "transfer", help="re-index a model's embeddings for a new tokenizer (vocabulary transfer)"
    )
    transfer.add_argument("--from", dest="source", type=Path, required=True, help="model dir")
    transfer.add_argument("--tokenizer", type=Path, default=data / "tokenizer_v2")
    transfer.add_argument("--out", type=Path, default=data / "v2" / "init")
    transfer.set_defaults(func=_cmd_transfer)

    bpb = sub.add_parser(
        "bpb", help="bits per byte of one or more models on the held-out corpus split"
    )
    bpb.add_argument("models", nargs="+", type=Path, help="model directories")
    bpb.add_argument("--corpus", type=Path, default=data / "corpus")
    bpb.add_argument("--context", type=int, default=1024)
    bpb.add_argument("--max-windows", type=int, help="only the first N windows (default: all)")
    bpb.add_argument("--json", type=Path, help="also write the figures here")
    bpb.set_defaults(func=_cmd_bpb)

    adapt = sub.add_parser(
        "adapt",
        help="continue training on corpus code (FIM-transformed in part) mixed with tasks",
    )
    adapt.add_argument("--init", type=Path, default=data / "v2" / "init")
    adapt.add_argument("--corpus", type=Path, default=data / "corpus")
    adapt.add_argument(
        "--tasks",
        action="append",
        required=True,
        metavar="JSONL[:WEIGHT]",
        help="task file (prompt/completion JSONL) and its share of task rows (default 1)",
    )
    adapt.add_argument("--context", type=int, default=1024)
    adapt.add_argument("--code-share", type=float, default=0.5, help="rows of corpus code")
    adapt.add_argument("--fim-rate", type=float, default=0.5, help="FIM share of code rows")
    adapt.add_argument("--spm-rate", type=float, default=0.5, help="SPM share of FIM rows")
    adapt.add_argument("--task-fim-rate", type=float, default=0.3, help="tasks written in FIM form")
    adapt.add_argument(
        "--task-infill-share",
        type=float,
        default=0.0,
        help="of the FIM-form tasks, the share that mask 1-3 body lines (the rest ask for the "
        "whole body before the next function); 0 = v2's stream",
    )
    adapt.add_argument(
        "--fim-fit",
        action="store_true",
        help="trim a FIM code row's prefix and suffix so its middle and EOS always fit the "
        "window (v2's stream cut the row's end)",
    )
    adapt.add_argument(
        "--exclude-flagged",
        type=Path,
        metavar="REPORT",
        help="leave out the tasks a `train decontam-report` flags (see --exclude-sets)",
    )
    adapt.add_argument(
        "--exclude-sets",
        nargs="+",
        metavar="EVAL_SET",
        help="only sources flagged for these eval sets (default: every set in the report)",
    )
    adapt.add_argument("--eval-windows", type=int, default=64, help="held-out code windows")
    adapt.add_argument("--valid-tasks", type=int, default=400, help="tasks held out for task_loss")
    add_loop_args(adapt, run_dir=data / "runs" / "adapt", lr=3e-4, batch=8, warmup=50)
    adapt.set_defaults(func=lambda args: _cmd_adapt(args, loop_config(args)))


def _cmd_transfer(args: argparse.Namespace) -> int:
    from model.train.adapt import transfer_vocabulary

    for path, what in ((args.source, "model"), (args.tokenizer, "tokenizer")):
        if not (path / "tokenizer.json").exists():
            raise CommandError(f"{what} directory {path} has no tokenizer.json: pass another")
    report = transfer_vocabulary(args.source, args.tokenizer, args.out)
    print(json.dumps(report))
    print(f"wrote {args.out}")
    return 0


def _cmd_bpb(args: argparse.Namespace) -> int:
    from model.train.adapt import held_out_bits_per_byte

    valid = args.corpus / "valid.jsonl"
    if not valid.exists():
        raise CommandError(f"no held-out split at {valid}: run `docomplete train corpus` first")
    results = []
    for model_dir in args.models:
        if not (model_dir / "config.json").exists():
            raise CommandError(f"no model at {model_dir}: pass a model directory")
        result = held_out_bits_per_byte(model_dir, valid, args.context, args.max_windows)
        results.append(result)
        print(json.dumps(result), flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _parse_tasks(specs: list[str]) -> tuple[list[Path], list[float]]:
    paths: list[Path] = []
    weights: list[float] = []
    for spec in specs:
        name, _, weight = spec.rpartition(":") if ":" in spec else (spec, "", "1")
        try:
            value = float(weight)
        except ValueError:
            raise CommandError(f"--tasks {spec}: the weight after ':' must be a number") from None
        path = Path(name)
        if not path.exists():
            raise CommandError(f"--tasks {spec}: {path} does not exist")
        if value < 0:
            raise CommandError(f"--tasks {spec}: the weight must not be negative")
        paths.append(path)
        weights.append(value)
    if not any(weights):
        raise CommandError("--tasks: give at least one file a positive weight")
    return paths, weights


def _cmd_adapt(args: argparse.Namespace, cfg) -> int:
    from model.train.adapt import MixConfig, run_adapt

    if not (args.init / "config.json").exists():
        raise CommandError(f"no model at {args.init}: run `docomplete train transfer` first")
    if not (args.corpus / "train.jsonl").exists():
        raise CommandError(f"no corpus at {args.corpus}: run `docomplete train corpus` first")
    for name in ("code_share", "fim_rate", "spm_rate", "task_fim_rate", "task_infill_share"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise CommandError(f"--{name.replace('_', '-')} must lie between 0 and 1")
    paths, weights = _parse_tasks(args.tasks)
    exclude: set[str] = set()
    if args.exclude_flagged is not None:
        from model.train.adapt import flagged_sources

        if not args.exclude_flagged.exists():
            raise CommandError(f"--exclude-flagged {args.exclude_flagged} does not exist")
        try:
            exclude = flagged_sources(args.exclude_flagged, args.exclude_sets)
        except (KeyError, ValueError) as exc:
            raise CommandError(
                f"--exclude-flagged {args.exclude_flagged} is not a decontam-report JSON ({exc})"
            ) from exc
    mix = MixConfig(
        context=args.context,
        code_share=args.code_share,
        fim_rate=args.fim_rate,
        spm_rate=args.spm_rate,
        task_fim_rate=args.task_fim_rate,
        task_infill_share=args.task_infill_share,
        fim_fit=args.fim_fit,
    )
    try:
        result = run_adapt(
            args.init,
            args.corpus,
            paths,
            weights,
            cfg,
            mix,
            export_dir=args.export,
            eval_windows=args.eval_windows,
            valid_tasks=args.valid_tasks,
            max_shard_size=args.max_shard_size,
            exclude_sources=exclude,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    print(f"adapt finished at step {result['step']} of {result['max_steps']}")
    return 0
