"""Subcommands contributed to the ``docomplete`` CLI (see server/cli.py): lsp, demo, bench lsp."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's subcommands; handlers import heavy modules lazily."""
    lsp = commands.add_parser(
        "lsp",
        help="run the language server (stdio by default)",
        description="Run the docomplete language server. Logs go to stderr or --log-file, "
        "never to stdout (stdout is the protocol).",
    )
    lsp.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    # Many LSP clients (vscode-languageclient among them) append --stdio; it is our default.
    lsp.add_argument("--stdio", action="store_true", help="use stdio (the default)")
    lsp.add_argument("--log-file", type=Path, help="write logs here")
    lsp.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more logging"
    )
    lsp.set_defaults(func=run_lsp)

    demo = commands.add_parser(
        "demo",
        help="drive the real LSP server over stdio on examples/demo.py and print candidates",
    )
    demo.add_argument("--backend", default="embedded", help='"embedded" or a model server URL')
    demo.add_argument("--model", type=Path, help="model directory (default: bundled model)")
    demo.add_argument("--file", type=Path, help="Python file to complete (default: the demo)")
    demo.add_argument("--n", type=int, default=4, help="candidates per function")
    demo.set_defaults(func=run_demo)

    bench_lsp = bench.add_parser(
        "lsp", help="inline-completion latency through a real LSP client session"
    )
    bench_lsp.add_argument("--json", type=Path, help="write figures here")
    bench_lsp.add_argument("--requests", type=int, default=50, help="timed requests (>= 1)")
    bench_lsp.add_argument("--model", type=Path, help="model directory (default: bundled model)")
    bench_lsp.add_argument(
        "--backend", default="embedded", help='"embedded" (default) or a model server URL'
    )
    bench_lsp.add_argument("--n", type=int, default=4, help="candidates per request")
    bench_lsp.add_argument(
        "--temperature",
        type=float,
        help="the server's sampling temperature (default: its own, docomplete.temperature)",
    )
    bench_lsp.add_argument(
        "--busy-loop",
        action="store_true",
        help="keep one core busy with another process while measuring (background load)",
    )
    bench_lsp.add_argument(
        "--runs",
        type=int,
        default=1,
        metavar="K",
        help="run the workload K times, each on a fresh server, and report each figure's median "
        "(with the per-run p50, p95 and pass counts)",
    )
    bench_lsp.add_argument(
        "--cold-starts",
        type=int,
        metavar="K",
        help="measure only cold_first_ms: K fresh servers, one request each (median reported)",
    )
    bench_lsp.set_defaults(func=run_bench_lsp)


def _parse_tcp(value: str) -> tuple[str, int]:
    from model.cli_support import CommandError

    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"--tcp expects HOST:PORT (e.g. 127.0.0.1:2087), got {value!r}")
    return host, int(port)


def run_lsp(args: argparse.Namespace) -> int:
    from server.app import create_server

    verbose = getattr(args, "verbose", 0) or 0
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else logging.INFO
    root = logging.getLogger()
    # Never stdout: it carries the protocol. cli.main already logs to stderr.
    for handler in list(root.handlers):
        if getattr(handler, "stream", None) is sys.stdout:
            root.removeHandler(handler)
    log_dir: Path | None = None
    if args.log_file is not None:
        from model.cli_support import CommandError

        log_file: Path = args.log_file.expanduser()
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write --log-file {log_file}: {exc.strerror}") from exc
        file_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        root.addHandler(file_handler)
        log_dir = log_file.parent
    from server.request_log import RequestIdFilter

    for handler in root.handlers:
        handler.addFilter(RequestIdFilter())
    logging.getLogger("server").setLevel(level)
    # pygls logs every message at INFO: only worth it when debugging the protocol (-vv).
    logging.getLogger("pygls").setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    server = create_server(log_dir=log_dir)
    if args.tcp:
        host, port = _parse_tcp(args.tcp)
        logging.getLogger("server").info("listening on %s:%d", host, port)
        server.start_tcp(host, port)
    else:
        server.start_io()
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from server.demo import run_demo as demo

    return demo(args)


def run_bench_lsp(args: argparse.Namespace) -> int:
    from server.bench import run_bench

    return run_bench(args)
