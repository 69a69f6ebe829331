"""``docomplete ab report``: per-arm acceptance, retention, latency and a verdict from telemetry.

Reads the language server's telemetry database (:mod:`evalkit.telemetry_db`), groups events by
A/B arm and compares acceptance between arms with a two-proportion z-test. matplotlib (Agg) is
imported only for ``--plot``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from evalkit.ab_stats import percentile, trials_needed, two_proportion_test, wilson_interval
from evalkit.telemetry_db import Event, read_events
from model.cli_support import CommandError, format_table

ALPHA = 0.05
NO_ARM = "(no arm)"
#: Doctest statuses that mean the examples did not run (nothing to pass or fail).
_NOT_RUN = {None, "no-examples", "disabled", "skipped", "unavailable"}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """``7d``, ``12h``, ``30m``, ``2w``, ``90s`` ago, or an ISO date/time (local time if no zone)."""
    now = time.time() if now is None else now
    relative = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if relative:
        return now - float(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"--since {text!r}: expected an ISO date/time (2025-01-31, 2025-01-31T14:00) "
            "or an age such as 30m, 12h, 7d, 2w"
        ) from None
    return moment.timestamp()


@dataclass
class ArmSummary:
    """Everything the report says about one arm."""

    arm: str
    requests: int = 0
    shown: int = 0
    accepted: int = 0
    partial: int = 0
    dismissed: int = 0
    acceptance: float | None = None
    acceptance_ci: tuple[float, float] = (0.0, 1.0)
    # delay in seconds → [retained, judged]
    retention: dict[float, list[int]] = field(default_factory=dict)
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    doctest_passed: int = 0
    doctest_run: int = 0

    def retention_rate(self, delay: float) -> tuple[float | None, tuple[float, float]]:
        kept, judged = self.retention.get(delay, [0, 0])
        return (kept / judged if judged else None), wilson_interval(kept, judged)


@dataclass
class Comparison:
    baseline: str
    other: str
    difference: float | None  # acceptance(other) - acceptance(baseline)
    z: float
    p_value: float
    alpha: float  # per comparison (Bonferroni when there are several)
    verdict: str
    needed_per_arm: int | None
    rough: bool  # too few accepts or misses for the normal approximation


@dataclass
class ABReport:
    telemetry: str
    since: float | None
    sessions: int
    arms: list[ArmSummary]
    delays: list[float]
    comparisons: list[Comparison]
    verdict: str

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for arm in data["arms"]:
            arm["retention"] = {f"{delay:g}s": pair for delay, pair in arm["retention"].items()}
        return data


def _arm_order(events: Sequence[Event]) -> list[str]:
    """Arms in ``abArms`` order where the server recorded it, then by first appearance."""
    position: dict[str, tuple[float, int]] = {}
    for order, event in enumerate(events):
        if event.event != "completion":
            continue
        name = event.arm or NO_ARM
        index = event.details.get("armIndex")
        key = (float(index) if isinstance(index, int) else float("inf"), order)
        position[name] = min(position.get(name, key), key)
    return sorted(position, key=position.__getitem__)


def summarize(events: Sequence[Event], *, telemetry: str, since: float | None) -> ABReport:
    """Group events by arm and request, then compare acceptance against the first arm."""
    arm_of: dict[tuple[str, str], str] = {}
    summaries: dict[str, ArmSummary] = {}
    latencies: dict[str, list[float]] = {}
    for event in events:
        if event.event == "completion" and event.request_id is not None:
            arm = event.arm or NO_ARM
            arm_of[(event.session, event.request_id)] = arm
            summaries.setdefault(arm, ArmSummary(arm)).requests += 1
            if event.latency_ms is not None:
                latencies.setdefault(arm, []).append(event.latency_ms)
    if not summaries:
        window = f" since {_when(since)}" if since is not None else ""
        raise CommandError(
            f"{telemetry}: no completion events{window}; use docomplete in the editor (with "
            "abArms set for an A/B test), then report again"
        )

    # Per request: what happened to it (keys are (session, request id): ids restart per server).
    shown: dict[tuple[str, str], str | None] = {}  # → doctest verdict of the shown candidate
    outcomes: dict[str, set[tuple[str, str]]] = {"accepted": set(), "partial": set()}
    dismissed: set[tuple[str, str]] = set()
    retained: dict[tuple[tuple[str, str], float], int] = {}
    for event in events:
        if event.request_id is None:
            continue  # a row cut short: nothing to attach it to
        key = (event.session, event.request_id)
        if key not in arm_of:
            continue  # its completion event is older than --since (or was lost)
        if event.event in ("shown", "accepted", "partial"):
            if shown.get(key) is None:
                shown[key] = event.doctest
            if event.event in outcomes:
                outcomes[event.event].add(key)
        elif event.event == "dismissed":
            dismissed.add(key)
        elif event.event == "retained" and event.delay_s is not None and event.retained is not None:
            retained[(key, float(event.delay_s))] = int(bool(event.retained))

    accepted = outcomes["accepted"]
    partial = outcomes["partial"] - accepted
    for key, verdict in shown.items():
        summary = summaries[arm_of[key]]
        summary.shown += 1
        summary.accepted += key in accepted
        summary.partial += key in partial
        summary.dismissed += key in dismissed and key not in accepted and key not in partial
        if verdict not in _NOT_RUN:
            summary.doctest_run += 1
            summary.doctest_passed += verdict == "passed"
    for (key, delay), kept in retained.items():
        if key in accepted:
            pair = summaries[arm_of[key]].retention.setdefault(delay, [0, 0])
            pair[0] += kept
            pair[1] += 1
    for name, summary in summaries.items():
        if summary.shown:
            summary.acceptance = summary.accepted / summary.shown
        summary.acceptance_ci = wilson_interval(summary.accepted, summary.shown)
        summary.latency_p50_ms = percentile(latencies.get(name, []), 0.50)
        summary.latency_p95_ms = percentile(latencies.get(name, []), 0.95)

    arms = [summaries[name] for name in _arm_order(events) if name in summaries]
    delays = sorted({delay for arm in arms for delay in arm.retention})
    comparisons = compare_arms(arms)
    return ABReport(
        telemetry=telemetry,
        since=since,
        sessions=len({event.session for event in events}),
        arms=arms,
        delays=delays,
        comparisons=comparisons,
        verdict=_overall_verdict(arms, comparisons),
    )


def compare_arms(arms: Sequence[ArmSummary], alpha: float = ALPHA) -> list[Comparison]:
    """Each arm against the first one; Bonferroni-corrected when there are several."""
    if len(arms) < 2:
        return []
    baseline = arms[0]
    per_test = alpha / (len(arms) - 1)
    comparisons = []
    for other in arms[1:]:
        z, p_value = two_proportion_test(
            other.accepted, other.shown, baseline.accepted, baseline.shown
        )
        rough = any(min(arm.accepted, arm.shown - arm.accepted) < 5 for arm in (baseline, other))
        difference = None
        needed = None
        if baseline.acceptance is not None and other.acceptance is not None:
            difference = other.acceptance - baseline.acceptance
            needed = trials_needed(baseline.acceptance, other.acceptance, per_test)
        if not baseline.shown or not other.shown:
            empty = baseline.arm if not baseline.shown else other.arm
            verdict = f"cannot compare: arm {empty} has no shown completions"
        elif p_value < per_test:
            better = other.arm if z > 0 else baseline.arm
            verdict = f"arm {better} is better"
        else:
            verdict = f"no significant difference at α = {alpha:g}"
        comparisons.append(
            Comparison(
                baseline.arm,
                other.arm,
                difference,
                z,
                p_value,
                per_test,
                verdict,
                needed,
                rough,
            )
        )
    return comparisons


def _overall_verdict(arms: Sequence[ArmSummary], comparisons: Sequence[Comparison]) -> str:
    if len(arms) < 2:
        only = arms[0].arm if arms else NO_ARM
        if only == NO_ARM:
            return "no A/B arms in this data (set abArms to run a test): nothing to compare"
        return f"only arm {only} has data: nothing to compare"
    if len(comparisons) == 1:
        return comparisons[0].verdict
    if not any(c.verdict.endswith("is better") for c in comparisons):
        return f"no significant difference at α = {ALPHA:g}"
    return "; ".join(f"{c.other} vs {c.baseline}: {c.verdict}" for c in comparisons)


# -- presentation -------------------------------------------------------------------------------


def _when(moment: float | None) -> str:
    return "-" if moment is None else datetime.fromtimestamp(moment).isoformat(" ", "minutes")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _interval(low: float, high: float) -> str:
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def delay_label(delay: float) -> str:
    return f"{delay / 60:g} min" if delay >= 60 and delay % 60 == 0 else f"{delay:g} s"


def format_report(report: ABReport) -> str:
    """The report as the terminal shows it: a table per arm, the tests, the verdict."""
    headers = ["arm", "requests", "shown", "accepted", "rate (95 % CI)", "partial", "dismissed"]
    headers += [f"retained {delay_label(d)}" for d in report.delays]
    headers += ["p50 ms", "p95 ms", "shown passes doctests"]
    rows: list[list[Any]] = []
    for arm in report.arms:
        row: list[Any] = [
            arm.arm,
            arm.requests,
            arm.shown,
            arm.accepted,
            f"{_pct(arm.acceptance)} {_interval(*arm.acceptance_ci)}",
            arm.partial,
            arm.dismissed,
        ]
        for delay in report.delays:
            rate, _ = arm.retention_rate(delay)
            kept, judged = arm.retention.get(delay, [0, 0])
            row.append(f"{_pct(rate)} ({kept}/{judged})")
        doctests = (
            f"{_pct(arm.doctest_passed / arm.doctest_run)} ({arm.doctest_passed}/{arm.doctest_run})"
            if arm.doctest_run
            else "-"
        )
        row += [_ms(arm.latency_p50_ms), _ms(arm.latency_p95_ms), doctests]
        rows.append(row)
    window = f"since {_when(report.since)}" if report.since is not None else "all events"
    lines = [
        f"A/B report: {report.telemetry} ({window}, {report.sessions} session(s))",
        "",
        format_table(headers, rows),
        "",
    ]
    for c in report.comparisons:
        diff = "-" if c.difference is None else f"{100 * c.difference:+.1f} points"
        line = (
            f"{c.other} vs {c.baseline}: acceptance {diff}, z = {c.z:.2f}, p = {c.p_value:.3g} "
            f"(α = {c.alpha:.3g}) → {c.verdict}"
        )
        if c.needed_per_arm is not None and not c.verdict.endswith("is better"):
            line += f"; about {c.needed_per_arm:,} shown per arm would detect this difference"
        if c.rough:
            line += " (fewer than 5 accepts or misses in an arm: the p-value is rough)"
        lines.append(line)
    lines.append(f"verdict: {report.verdict}")
    return "\n".join(lines)


def plot_report(report: ABReport, path: Path) -> None:
    """Grouped bars per metric (acceptance, retention at each delay), one colour per arm,
    with 95 % Wilson intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["acceptance"] + [f"retained {delay_label(d)}" for d in report.delays]
    width = 0.8 / max(1, len(report.arms))
    figure, axes = plt.subplots(figsize=(2.2 + 1.8 * len(metrics), 4))
    for offset, arm in enumerate(report.arms):
        values: list[float] = []
        errors: list[list[float]] = [[], []]
        intervals = [(arm.acceptance, arm.acceptance_ci)]
        intervals += [arm.retention_rate(delay) for delay in report.delays]
        for rate, (low, high) in intervals:
            value = rate or 0.0
            values.append(value)
            errors[0].append(max(0.0, value - low) if rate is not None else 0.0)
            errors[1].append(max(0.0, high - value) if rate is not None else 0.0)
        positions = [i + (offset - (len(report.arms) - 1) / 2) * width for i in range(len(metrics))]
        axes.bar(positions, values, width, yerr=errors, capsize=4, label=arm.arm)
    axes.set_xticks(range(len(metrics)), metrics)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("rate (95 % Wilson interval)")
    axes.set_title(report.verdict, fontsize=9)
    # Below the axes: bars near 100 % (retention often is) would hide under it.
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=max(1, len(report.arms)))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def build_report(paths: Path | Sequence[Path], since: str | None = None) -> ABReport:
    """The report over one database or several (e.g. one per team member)."""
    start = parse_since(since) if since else None
    paths = [paths] if isinstance(paths, Path) else list(dict.fromkeys(paths))
    seen: set[tuple[Any, ...]] = set()
    events: list[Event] = []
    for path in paths:
        for event in read_events(path, start):
            # The same events twice (a file given twice, or a copy of it) count once.
            identity = (
                event.session,
                event.time,
                event.event,
                event.request_id,
                event.candidate_index,
                event.delay_s,
            )
            if identity not in seen:
                seen.add(identity)
                events.append(event)
    events.sort(key=lambda event: event.time)
    return summarize(events, telemetry=", ".join(str(p) for p in paths), since=start)


def run_ab_report(
    telemetry: Sequence[Path], since: str | None, plot: Path | None, json_path: Path | None
) -> Iterable[str]:
    """The command's work; returns the lines to print."""
    report = build_report([path.expanduser() for path in telemetry], since)
    lines = [format_report(report)]
    if plot is not None:
        try:
            plot_report(report, plot)
        except OSError as exc:
            raise CommandError(f"cannot write --plot {plot}: {exc.strerror or exc}") from None
        lines.append(f"plot: {plot}")
    if json_path is not None:
        try:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write --json {json_path}: {exc.strerror}") from None
        lines.append(f"json: {json_path}")
    return lines
