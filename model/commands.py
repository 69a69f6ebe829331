"""Subcommands contributed to the ``docomplete`` CLI (see server/cli.py): serve, complete,
bench sampling, bench peer."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's subcommands; handlers import heavy modules lazily."""
    serve = commands.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible /v1/completions API",
        description="Serve a local Hugging Face causal LM (default: the bundled model) with "
        "dynamic batching. Point the editor or evalkit at http://HOST:PORT.",
    )
    serve.add_argument("--model", type=Path, help="model directory (default: bundled model)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument(
        "--max-batch",
        type=int,
        default=256,
        help="most sequences (prompts x n) decoded together (default: %(default)s)",
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=64,
        help="requests allowed to wait; more get 429 + Retry-After (default: %(default)s)",
    )
    serve.add_argument(
        "--max-rows",
        type=int,
        default=512,
        help="most completions (prompts x n) one request may ask for; more get a 400 "
        "(default: %(default)s)",
    )
    serve.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    serve.set_defaults(func=run_serve)

    complete = commands.add_parser(
        "complete",
        help="sample completions of a prompt and print them with their mean log-probs",
    )
    complete.add_argument("prompt", help='the prompt, e.g. a signature + docstring ("\\n" ok)')
    complete.add_argument("--model", type=Path, help="model directory (default: bundled model)")
    complete.add_argument("--n", type=int, default=4, help="candidates (default: %(default)s)")
    complete.add_argument("--temperature", type=float, default=0.8)
    complete.add_argument("--top-p", type=float, default=0.95)
    complete.add_argument("--max-tokens", type=int, default=128)
    complete.add_argument("--stop", action="append", help="stop string (repeatable)")
    complete.add_argument("--seed", type=int)
    complete.set_defaults(func=run_complete)

    sampling = bench.add_parser(
        "sampling",
        help="engine vs HF generate(num_return_sequences=n) tokens/s on HumanEval prompts",
    )
    sampling.add_argument("--model", type=Path, help="model directory (default: bundled model)")
    sampling.add_argument("--n", type=int, default=20, help="samples per prompt")
    sampling.add_argument("--prompts", type=int, default=20, help="first N HumanEval prompts")
    sampling.add_argument("--max-tokens", type=int, default=128)
    sampling.add_argument("--temperature", type=float, default=0.8)
    sampling.add_argument("--top-p", type=float, default=0.95)
    sampling.add_argument("--seed", type=int, default=0)
    sampling.add_argument("--json", type=Path, help="write figures here")
    sampling.set_defaults(func=run_bench_sampling)

    decode = bench.add_parser(
        "decode",
        help="ms per decode step of the embedded engine (n=1 and n=4 rows)",
    )
    decode.add_argument("--model", type=Path, help="model directory (default: bundled model)")
    decode.add_argument(
        "--n", default="1,4", help="rows per step, comma-separated (default: %(default)s)"
    )
    decode.add_argument("--steps", type=int, default=48, help="decode steps per run")
    decode.add_argument("--repeats", type=int, default=7, help="runs per n (median reported)")
    decode.add_argument(
        "--threads", default="auto", help="torch threads: a number or auto (as the editor)"
    )
    decode.add_argument(
        "--matmul-dtype",
        choices=("float32", "bfloat16", "auto"),
        help="layer projections' dtype (default: $DOCOMPLETE_MATMUL_DTYPE or auto, as the editor)",
    )
    decode.add_argument("--json", type=Path, help="write figures here")
    decode.set_defaults(func=run_bench_decode)

    peer = bench.add_parser(
        "peer",
        help="docomplete serve vs llama.cpp's llama-server, same model, tokens/s",
        description="Export the model to GGUF, then run `docomplete serve` and `llama-server "
        "--parallel P -t T` one after the other on the same HumanEval prompts. Needs the "
        "llama.cpp build of `make interop`.",
    )
    peer.add_argument("--model", type=Path, help="model directory (default: bundled model)")
    peer.add_argument("--gguf", type=Path, help="use this GGUF of the model (default: export)")
    peer.add_argument("--n", type=int, default=20, help="samples per prompt")
    peer.add_argument("--prompts", type=int, default=20, help="first N HumanEval prompts")
    peer.add_argument("--max-tokens", type=int, default=128)
    peer.add_argument("--temperature", type=float, default=0.8)
    peer.add_argument("--top-p", type=float, default=0.95)
    peer.add_argument("--parallel", type=int, default=20, help="llama-server --parallel")
    peer.add_argument("--threads", type=int, default=2, help="llama-server -t")
    peer.add_argument("--seed", type=int, default=0)
    peer.add_argument("--logs", type=Path, help="keep both servers' logs in this directory")
    peer.add_argument("--json", type=Path, help="write figures here")
    peer.set_defaults(func=run_bench_peer)


def _model_dir(path: Path | None) -> Path:
    """The model directory to use, or a CommandError naming the fix."""
    from model.cli_support import CommandError
    from model.paths import default_model_path

    model = path if path is not None else default_model_path()
    if not (model / "config.json").is_file():
        raise CommandError(
            f"no model at {model} (no config.json): pass --model with a local Hugging Face "
            "model directory, set DOCOMPLETE_MODEL, or train the bundled one with "
            "`docomplete train`"
        )
    return model


def _sampling_params(args: argparse.Namespace):  # -> SamplingParams
    from model.cli_support import CommandError
    from model.protocol import SamplingParams

    try:
        return SamplingParams(
            n=args.n,
            temperature=args.temperature,
            top_p=args.top_p,
            max_tokens=args.max_tokens,
            stop=tuple(getattr(args, "stop", None) or ()),
            seed=args.seed,
        )
    except ValueError as exc:
        raise CommandError(f"{exc} (fix the matching --option)") from exc


def _load_engine(path: Path, device: str = "auto"):
    from model.cli_support import CommandError
    from model.engine import Engine, EngineLoadError

    try:
        return Engine.load(path, device=device)
    except EngineLoadError as exc:
        raise CommandError(str(exc)) from exc


def run_serve(args: argparse.Namespace) -> int:
    from model.cli_support import CommandError
    from model.serve import serve

    if args.max_batch < 1 or args.max_queue < 1 or args.max_rows < 1:
        raise CommandError("--max-batch, --max-queue and --max-rows must be >= 1")
    if not 0 < args.port < 65536:
        raise CommandError(f"--port must be in 1..65535, got {args.port}")
    model = _model_dir(args.model)
    from model.engine import EngineLoadError

    try:
        serve(
            str(model),
            host=args.host,
            port=args.port,
            max_batch=args.max_batch,
            max_queue=args.max_queue,
            max_rows=args.max_rows,
            device=args.device,
        )
    except EngineLoadError as exc:
        raise CommandError(str(exc)) from exc
    return 0


def run_complete(args: argparse.Namespace) -> int:
    params = _sampling_params(args)
    engine = _load_engine(_model_dir(args.model))
    # Shells pass "\n" literally; a prompt is code, so turn those into real newlines.
    prompt = args.prompt.replace("\\n", "\n")
    [generated] = engine.generate([prompt], params)
    candidates = [g.to_candidate() for g in generated]
    # Codex ranks samples by mean token log-prob; best first.
    ranked = sorted(
        candidates,
        key=lambda c: c.mean_logprob if c.mean_logprob is not None else float("-inf"),
        reverse=True,
    )
    for rank, candidate in enumerate(ranked, start=1):
        print(
            f"--- candidate {rank}: mean log-prob {_format_logprob(candidate.mean_logprob)}, "
            f"{len(candidate.token_logprobs)} tokens, finish={candidate.finish_reason}"
        )
        print(prompt + candidate.text)
    return 0


def run_bench_decode(args: argparse.Namespace) -> int:
    from model.cli_support import CommandError
    from model.decode_bench import run_decode_bench

    try:
        ns = tuple(int(part) for part in str(args.n).split(","))
        threads: int | str = args.threads if args.threads == "auto" else int(args.threads)
    except ValueError as exc:
        raise CommandError(
            f"--n takes numbers like 1,4 and --threads a number or auto ({exc})"
        ) from None
    if (
        min(ns) < 1
        or args.steps < 1
        or args.repeats < 1
        or (isinstance(threads, int) and threads < 1)
    ):
        raise CommandError("--n, --steps, --repeats and --threads must be >= 1")
    run_decode_bench(
        _model_dir(args.model),
        ns=ns,
        steps=args.steps,
        repeats=args.repeats,
        threads=threads,
        matmul_dtype=args.matmul_dtype,
        json_path=str(args.json) if args.json is not None else None,
    )
    return 0


def run_bench_sampling(args: argparse.Namespace) -> int:
    from model.cli_support import CommandError
    from model.sampling_bench import run_sampling_bench

    if args.n < 1 or args.prompts < 1 or args.max_tokens < 1:
        raise CommandError("--n, --prompts and --max-tokens must be >= 1")
    if not (args.temperature > 0 and 0 < args.top_p <= 1):
        raise CommandError("--temperature must be > 0 and --top-p in (0, 1]")
    model = _model_dir(args.model) if args.model is not None else None
    run_sampling_bench(
        model,
        n=args.n,
        prompt_count=args.prompts,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        json_path=str(args.json) if args.json else None,
    )
    return 0


def run_bench_peer(args: argparse.Namespace) -> int:
    from model.cli_support import CommandError
    from model.interop import find_build
    from model.peer_bench import run_peer_bench

    if min(args.n, args.prompts, args.max_tokens, args.parallel, args.threads) < 1:
        raise CommandError("--n, --prompts, --max-tokens, --parallel and --threads must be >= 1")
    if args.n > args.parallel:
        raise CommandError(
            f"--n {args.n} is above --parallel {args.parallel}: llama-server "
            "refuses n above its slot count; raise --parallel"
        )
    if not (args.temperature > 0 and 0 < args.top_p <= 1):
        raise CommandError("--temperature must be > 0 and --top-p in (0, 1]")
    if args.gguf is not None and not args.gguf.is_file():
        raise CommandError(f"no GGUF at {args.gguf}: pass an existing --gguf file or leave it out")
    run_peer_bench(
        _model_dir(args.model),
        find_build(),
        gguf=args.gguf,
        n=args.n,
        prompt_count=args.prompts,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        parallel=args.parallel,
        threads=args.threads,
        seed=args.seed,
        json_path=str(args.json) if args.json else None,
        log_dir=args.logs,
    )
    return 0


def _format_logprob(value: float | None) -> str:
    return "none (empty text)" if value is None else f"{value:.3f}"
