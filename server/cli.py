"""The ``docomplete`` console script: one entry point, subcommands contributed per package.

Each package has a ``register(commands, bench)`` function that adds its subcommands (and its
``docomplete bench …`` entries). Handlers import heavy modules lazily, so ``docomplete lsp``
starts on a machine without torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from model.cli_support import CommandError

# Modules that contribute subcommands; each defines register(commands, bench).
_COMMAND_MODULES = (
    "server.commands",  # lsp, demo, bench lsp
    "model.commands",  # serve, complete, bench sampling
    "model.train.commands",  # train …
    "evalkit.commands",  # eval …, bench eval
    "evalkit.ab_commands",  # ab report
    "evalkit.sandbox_commands",  # sandbox …, bench sandbox
)

Handler = Callable[[argparse.Namespace], int]


def build_parser(modules: Sequence[str] = _COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docomplete",
        description="Docstring-conditioned, doctest-verified Python completions.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench_parser = commands.add_parser("bench", help="run a benchmark and print measured figures")
    bench = bench_parser.add_subparsers(dest="bench", metavar="BENCHMARK")
    bench_parser.set_defaults(func=lambda _a: _missing(bench_parser))
    for name in modules:
        module = importlib.import_module(name)
        module.register(commands, bench)
    return parser


def _missing(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _command_modules(argv: Sequence[str]) -> Sequence[str]:
    """Only the server's own commands for ``docomplete lsp``: an editor starts it on every
    launch, and importing every package's commands cost ~0.1 s of that start on a busy
    2-core machine."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return _COMMAND_MODULES[:1] if command == "lsp" else _COMMAND_MODULES


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(_command_modules(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except CommandError as exc:
        print(f"docomplete: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("docomplete: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
