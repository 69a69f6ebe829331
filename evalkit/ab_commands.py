"""``docomplete ab report``: the online A/B test's read-out from the editor telemetry."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``ab`` and its subcommands; the handler imports the report module lazily."""
    from evalkit.telemetry_db import default_telemetry_path

    ab_parser = commands.add_parser(
        "ab", help="online A/B tests of sampling settings in the editor (see docs/AB.md)"
    )
    abs_ = ab_parser.add_subparsers(dest="ab_command", metavar="AB_COMMAND")
    ab_parser.set_defaults(func=lambda _a: _print_help(ab_parser))

    report = abs_.add_parser(
        "report",
        help="acceptance, retention, latency and a verdict per abArms arm",
        description="Read the language server's telemetry database and compare the A/B arms: "
        "requests, shown, acceptance rate (95 % Wilson interval), partial accepts, "
        "dismissals, retention after each delay, latency p50/p95 and the doctest pass rate of "
        "the shown candidate; then a two-proportion z-test on acceptance against the first arm.",
    )
    report.add_argument(
        "--telemetry",
        type=Path,
        action="append",
        metavar="PATH",
        help="the telemetryFile database; repeat it to pool several (one per team member) "
        f"(default: {default_telemetry_path()})",
    )
    report.add_argument(
        "--since",
        metavar="WHEN",
        help="only events from then on: an ISO date/time (2025-01-31, 2025-01-31T14:00) or an "
        "age (30m, 12h, 7d, 2w)",
    )
    report.add_argument("--plot", type=Path, metavar="FILE.png", help="bar plot with intervals")
    report.add_argument("--json", type=Path, metavar="PATH", help="write the figures as JSON")
    report.set_defaults(func=run_report)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_report(args: argparse.Namespace) -> int:
    from evalkit.ab_report import run_ab_report
    from evalkit.telemetry_db import default_telemetry_path

    paths = args.telemetry or [default_telemetry_path()]
    for line in run_ab_report(paths, args.since, args.plot, args.json):
        print(line)
    return 0
