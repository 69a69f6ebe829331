"""``docomplete bench lsp``: inline-completion latency through a real client session over stdio.

The workload is what an editor user produces: a different function per request (the demo file's
functions, then HumanEval prompts), the cursor where the body starts, n candidates, doctest
filter on. Latency is measured at the client, from sending ``textDocument/inlineCompletion`` to
having the answer. The cached figure repeats requests already answered (the cache's job). The
real-file figures come from ``examples/realistic_module.py``'s ``# CURSOR`` states (a method,
a nested function, a partial body with code below, mid-line, imports the sandbox lacks), timed
apart: their prompts and doctest preludes are larger.
``cold_first_ms`` is the first request of a fresh server: process start to its answer, model
load included; ``time_to_passing_ms`` (server-side) is when a candidate first passed all its
doctest examples. ``--busy-loop`` keeps one core busy with another process meanwhile.
``--cold-starts K`` measures only ``cold_first_ms``: K fresh servers, one request each (the
median is reported; a single cold start is noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GOALS_MS = {"p50_ms": 250.0, "p95_ms": 600.0, "cached_ms": 10.0, "cold_first_ms": 3000.0}
WARMUP_REQUESTS = 2
CACHED_REPEATS = 20


@dataclass(frozen=True)
class BenchRequest:
    uri: str
    text: str
    line: int
    character: int
    name: str


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def build_workload(count: int) -> list[BenchRequest]:
    """``count`` requests on distinct functions: examples/demo.py first, then HumanEval."""
    from server.demo import DEMO_FILE, function_slots

    requests: list[BenchRequest] = []
    demo_source = DEMO_FILE.read_text(encoding="utf-8")
    for slot in function_slots(demo_source):
        requests.append(
            BenchRequest(
                f"file:///bench/demo_{slot.name}.py",
                demo_source,
                slot.line,
                slot.character,
                slot.name,
            )
        )
    try:
        from evalkit.data import load_dataset

        problems = load_dataset("humaneval").problems
    except Exception:  # without the eval extra: repeat the demo functions in new documents
        problems = ()
    for problem in problems:
        text = problem.prompt if problem.prompt.endswith("\n") else problem.prompt + "\n"
        requests.append(
            BenchRequest(
                f"file:///bench/{problem.task_id.replace('/', '_')}.py",
                text,
                text.count("\n"),
                0,
                problem.task_id,
            )
        )
    base = list(requests)
    copy = 1
    while len(requests) < count + WARMUP_REQUESTS:
        # Distinct prompts are what keep the cache out of the uncached figures.
        for request in base:
            marker = f"# variant {copy}\n"
            requests.append(
                BenchRequest(
                    request.uri.replace(".py", f"_{copy}.py"),
                    marker + request.text,
                    request.line + 1,
                    request.character,
                    request.name,
                )
            )
        copy += 1
    return requests[: count + WARMUP_REQUESTS]


def measured_real_files_enabled() -> bool:
    from server.demo import REALISTIC_FILE

    return REALISTIC_FILE.is_file()


def build_real_file_workload() -> list[BenchRequest]:
    """One request per ``# CURSOR`` state of examples/realistic_module.py (one document)."""
    from server.demo import REALISTIC_FILE, marked_cursors

    uri = REALISTIC_FILE.resolve().as_uri()
    return [
        BenchRequest(uri, cursor.text, cursor.line, cursor.character, cursor.label)
        for cursor in marked_cursors(REALISTIC_FILE.read_text(encoding="utf-8"))
    ]


async def _measure_real_files(session: Any, workload: list[BenchRequest]) -> list[float]:
    latencies: list[float] = []
    for request in workload:
        session.open(request.uri, request.text)  # the next editor state of the same file
        started = time.perf_counter()
        await session.inline(request.uri, request.line, request.character)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def _measure(settings: dict[str, Any], workload: list[BenchRequest]) -> dict[str, Any]:
    from server.lsp_session import LspSession

    warmup, timed = workload[:WARMUP_REQUESTS], workload[WARMUP_REQUESTS:]
    latencies: list[float] = []
    cached: list[float] = []
    with_items = 0
    async with LspSession(settings, root_uri=Path.cwd().as_uri()) as session:
        for request in workload:
            session.open(request.uri, request.text)
        for request in warmup:  # loads the model and starts the sandbox; not timed
            await session.inline(request.uri, request.line, request.character)
            if request is warmup[0]:
                cold_first = (time.perf_counter() - session.started_at) * 1000
        initialize_ms = (session.initialized_at - session.started_at) * 1000
        for request in timed:
            started = time.perf_counter()
            result = await session.inline(request.uri, request.line, request.character)
            latencies.append((time.perf_counter() - started) * 1000)
            with_items += bool(result.items)
        for request in timed[:CACHED_REPEATS]:
            started = time.perf_counter()
            await session.inline(request.uri, request.line, request.character)
            cached.append((time.perf_counter() - started) * 1000)
        real_files = (
            await _measure_real_files(session, build_real_file_workload())
            if measured_real_files_enabled()
            else []
        )
        events = [e for e in await session.telemetry() if e.get("event") == "completion"]
        errors = [m.message for m in session.messages if m.type <= 2]
    real_uri = build_real_file_workload()[0].uri if measured_real_files_enabled() else None
    uncached_events = [
        e for e in events if e.get("fromCache") is None and e.get("uri") != real_uri
    ][WARMUP_REQUESTS:]
    sample_ms = [
        float(e["timingsMs"].get("sample", 0)) for e in uncached_events if e.get("timingsMs")
    ]
    doctest_ms = [
        float(e["timingsMs"].get("doctest", 0)) for e in uncached_events if e.get("timingsMs")
    ]
    # The completion event names its top candidate's verdict "doctest" ("bestDoctest" before).
    passes = sum(e.get("doctest", e.get("bestDoctest")) == "passed" for e in uncached_events)
    to_passing = [
        float(e["timingsMs"]["firstPass"])
        for e in uncached_events
        if (e.get("timingsMs") or {}).get("firstPass") is not None
    ]
    answered: dict[str, int] = {}
    for e in uncached_events:
        answered[str(e.get("answered"))] = answered.get(str(e.get("answered")), 0) + 1
    steps = [int(e.get("decodeSteps") or 0) for e in uncached_events]
    per_step = [
        float(e["timingsMs"].get("sample", 0)) / int(e["decodeSteps"])
        for e in uncached_events
        if e.get("timingsMs") and e.get("decodeSteps")
    ]
    slowest = sorted(zip(latencies, (r.name for r in timed), strict=True), reverse=True)[:3]
    return {
        "slowest": [[name, round(ms, 1)] for ms, name in slowest],
        "latencies": latencies,
        "cached": cached,
        "with_items": with_items,
        "sample_ms": sample_ms,
        "doctest_ms": doctest_ms,
        "top_passes": passes,
        "decode_steps": [s for s in steps if s > 0],
        "ms_per_step": per_step,
        "errors": errors,
        "cold_first_ms": cold_first,
        "initialize_ms": initialize_ms,
        "to_passing": to_passing,
        "answered": answered,
        "real_files": real_files,
        "real_file_doctest_ms": [
            float(e["timingsMs"].get("doctest", 0))
            for e in events
            if e.get("uri") == real_uri and e.get("timingsMs") and e.get("fromCache") is None
        ],
    }


async def _measure_cold_start(
    settings: dict[str, Any], request: BenchRequest
) -> tuple[float, float, list[str]]:
    """One fresh server, one request: (cold_first_ms, initialize_ms, error messages)."""
    from server.lsp_session import LspSession

    async with LspSession(settings, root_uri=Path.cwd().as_uri()) as session:
        session.open(request.uri, request.text)
        await session.inline(request.uri, request.line, request.character)
        cold_first = (time.perf_counter() - session.started_at) * 1000
        errors = [m.message for m in session.messages if m.type <= 2]
    return cold_first, (session.initialized_at - session.started_at) * 1000, errors


def _cold_start_figures(
    settings: dict[str, Any], runs: int, request: BenchRequest
) -> tuple[list[list[Any]], dict[str, Any]]:
    from model.cli_support import CommandError

    cold: list[float] = []
    initialize: list[float] = []
    for _ in range(runs):
        cold_first, initialize_ms, errors = asyncio.run(_measure_cold_start(settings, request))
        if errors:
            raise CommandError(f"the server reported: {errors[0]}")
        cold.append(cold_first)
        initialize.append(initialize_ms)
    goal = GOALS_MS["cold_first_ms"]
    figures: dict[str, Any] = {
        "cold_first_ms": round(statistics.median(cold), 1),
        "cold_first_runs_ms": [round(c, 1) for c in cold],
        "initialize_ms": round(statistics.median(initialize), 1),
        "cold_starts": runs,
    }
    met = "yes" if figures["cold_first_ms"] <= goal else "no"
    rows = [
        ["cold_first_ms (median)", figures["cold_first_ms"], goal, met],
        ["initialize_ms (median)", figures["initialize_ms"], "-", "-"],
    ]
    return rows, figures


#: Figures shown under the goals, in this order, when the run produced them.
_REPORTED = (
    "mean_ms",
    "initialize_ms",
    "time_to_passing_ms_p50",
    "top_candidate_passes_doctests",
    "server_sample_p50_ms",
    "server_doctest_p50_ms",
    "real_file_p50_ms",
    "real_file_p95_ms",
    "real_file_server_doctest_p50_ms",
    "decode_steps_p50",
    "sample_ms_per_step_p50",
)


def _run_figures(measured: dict[str, Any]) -> dict[str, Any]:
    """The figures of one server's run of the workload."""
    latencies: list[float] = measured["latencies"]
    cached: list[float] = measured["cached"]
    figures: dict[str, Any] = {
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "max_ms": round(max(latencies), 1),
        "cached_ms": round(statistics.median(cached), 2),
        "cached_p95_ms": round(percentile(cached, 95), 2),
        "requests": len(latencies),
        "answered_with_items": measured["with_items"],
        "top_candidate_passes_doctests": measured["top_passes"],
        "cold_first_ms": round(measured["cold_first_ms"], 1),
        "initialize_ms": round(measured["initialize_ms"], 1),
        "answered": measured["answered"],
        "slowest": measured["slowest"],
    }
    if measured["to_passing"]:
        figures["time_to_passing_ms_p50"] = round(statistics.median(measured["to_passing"]), 1)
        figures["requests_with_a_passing_candidate"] = len(measured["to_passing"])
    if measured["sample_ms"]:
        figures["server_sample_p50_ms"] = round(statistics.median(measured["sample_ms"]), 1)
        figures["server_doctest_p50_ms"] = round(statistics.median(measured["doctest_ms"]), 1)
    if measured["decode_steps"] and measured["ms_per_step"]:
        # Sampling time per decode step of the longest candidate: the engine's share, apart
        # from how long the bodies happen to be.
        figures["decode_steps_p50"] = statistics.median(measured["decode_steps"])
        figures["decode_steps_p95"] = percentile(measured["decode_steps"], 95)
        figures["sample_ms_per_step_p50"] = round(statistics.median(measured["ms_per_step"]), 2)
    if measured["real_files"]:
        real = measured["real_files"]
        figures["real_file_requests"] = len(real)
        figures["real_file_p50_ms"] = round(percentile(real, 50), 1)
        figures["real_file_p95_ms"] = round(percentile(real, 95), 1)
        if measured["real_file_doctest_ms"]:
            doctests = measured["real_file_doctest_ms"]
            figures["real_file_server_doctest_p50_ms"] = round(statistics.median(doctests), 1)
    return figures


def _median_figures(per_run: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's figures as they are; several runs' numbers as their medians (a single run on
    a shared machine moves by tens of milliseconds, and its pass count by a few requests, from
    one run to the next). ``answered`` is summed over the runs, ``slowest`` taken over them."""
    if len(per_run) == 1:
        return dict(per_run[0])
    merged: dict[str, Any] = {}
    for name in per_run[0]:
        values = [run[name] for run in per_run if name in run]
        if name == "answered":
            total: dict[str, int] = {}
            for counts in values:
                for how, count in counts.items():
                    total[how] = total.get(how, 0) + count
            merged[name] = total
        elif name == "slowest":  # over all the runs
            merged[name] = sorted((p for ps in values for p in ps), key=lambda p: -p[1])[:3]
        elif len(values) == len(per_run):
            merged[name] = round(statistics.median(values), 2)
    return merged


def run_bench(args: argparse.Namespace) -> int:
    from model.cli_support import CommandError, emit_bench
    from server.demo import demo_settings

    if args.requests < 1:
        raise CommandError("--requests must be at least 1")
    runs: int = getattr(args, "runs", 1)
    if runs < 1:
        raise CommandError("--runs must be at least 1")
    if args.cold_starts is not None and args.cold_starts < 1:
        raise CommandError("--cold-starts must be at least 1")
    temperature = getattr(args, "temperature", None)
    if temperature is not None and not 0.0 <= temperature <= 2.0:
        raise CommandError("--temperature must lie between 0 and 2")
    settings = demo_settings(argparse.Namespace(backend=args.backend, model=args.model, n=args.n))
    if temperature is not None:
        settings["temperature"] = temperature
    settings["logLevel"] = "warning"
    # Latency of every answer: failing candidates stay in the inline list (the default policy
    # would answer with no items when all fail, which is not what is being timed).
    settings["showFailing"] = "always"
    workload = build_workload(args.requests)
    busy_note = ", one core kept busy by another process" if args.busy_loop else ""
    if args.cold_starts:
        print(f"bench lsp: {args.cold_starts} cold starts, n={args.n}, backend {args.backend}")
    else:
        print(
            f"bench lsp: {args.requests} inline completions (+{WARMUP_REQUESTS} warm-up), "
            f"n={args.n}, doctest filter on, backend {args.backend}"
            + busy_note
            + (f"; {runs} runs, each on a fresh server" if runs > 1 else "")
        )
    load_before = os.getloadavg()[0]
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy_loop else None
    try:
        if args.cold_starts:
            rows, cold_figures = _cold_start_figures(settings, args.cold_starts, workload[0])
            cold_figures.update(
                backend=args.backend,
                n=args.n,
                busy_loop=bool(args.busy_loop),
                load_avg_before=round(load_before, 2),
            )
            title = "LSP cold start: process start to the first answered inline completion"
            json_path = Path(args.json) if args.json else None
            emit_bench(title, ["figure", "value", "goal", "met"], rows, cold_figures, json_path)
            return 0
        measured_runs = [asyncio.run(_measure(settings, workload)) for _ in range(runs)]
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    for measured in measured_runs:
        if measured["errors"]:
            raise CommandError(f"the server reported: {measured['errors'][0]}")
    per_run = [_run_figures(measured) for measured in measured_runs]
    figures = _median_figures(per_run)
    figures.update(
        n=args.n,
        backend=args.backend,
        model=settings.get("modelPath"),
        busy_loop=bool(args.busy_loop),
        load_avg_before=round(load_before, 2),
        runs=runs,
    )
    if runs > 1:
        figures["per_run"] = per_run
    figures["goals_ms"] = GOALS_MS
    rows = [
        [name, figures[name], goal, "yes" if figures[name] <= goal else "no"]
        for name, goal in GOALS_MS.items()
    ]
    rows += [[name, figures[name], "-", "-"] for name in _REPORTED if name in figures]
    slowest = "; ".join(f"{name} {ms:g} ms" for name, ms in figures["slowest"])
    rows.append(["slowest requests", slowest, "-", "-"])
    if runs > 1:
        for name in ("p50_ms", "p95_ms", "top_candidate_passes_doctests"):
            values = ", ".join(f"{run[name]:g}" for run in per_run)
            rows.append([f"{name} per run", values, "-", "-"])
    title = "LSP inline-completion latency (client-measured, stdio)"
    if runs > 1:
        title += f"; each figure the median of {runs} fresh servers"
    emit_bench(
        title,
        ["figure", "value", "goal", "met"],
        rows,
        figures,
        Path(args.json) if args.json else None,
    )
    return 0
